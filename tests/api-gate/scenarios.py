"""Successful paths the fuzzer cannot reach on its own (it cannot guess a valid item state or
a password), each answer checked against the committed OpenAPI document with the same
response checks as the fuzzing run. Leaves an account with an API key and a few items
behind, so the fuzzing run meets real data; prints the API key on the last line.

Usage: scenarios.py OPENAPI_JSON BASE_URL
"""

import re
import sys
import uuid

import requests
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

schema = schemathesis.openapi.from_path(sys.argv[1])
base_url = sys.argv[2].rstrip("/")
findings = []
steps = 0


def call(operation_id, expected, path=None, query=None, body=None, headers=None, raw=None):
    """Sends one request and checks its answer; returns the decoded body (or None).
    `raw=(content_type, bytes)` sends that body as is instead of `body`."""
    global steps
    steps += 1
    operation = schema.find_operation_by_id(operation_id)
    kwargs = {}
    if body is not None:
        kwargs["body"] = body
        kwargs["media_type"] = "application/json"
    case = operation.Case(
        path_parameters=path or {}, query=query or {}, headers=headers or {}, **kwargs
    )
    if raw is None:
        response = case.call(base_url=base_url, timeout=10)
    else:
        url = base_url + case.formatted_path
        sent = {**(headers or {}), "Content-Type": raw[0]}
        response = requests.request(operation.method.upper(), url, data=raw[1], headers=sent, timeout=10)
    label = f"{operation.method.upper()} {operation.path} ({operation_id})"
    if expected is not None and response.status_code != expected:
        findings.append(f"{label}: expected {expected}, got {response.status_code}: {response.text[:300]}")
    try:
        case.validate_response(response, checks=CHECKS)
    except (Exception, FailureGroup) as failure:  # one group listing every failed check
        findings.append(f"{label} -> {response.status_code}: {failure}")
    try:
        return response.json()
    except ValueError:
        return None


password = "correct horse battery"
email = f"api-gate-{uuid.uuid4().hex[:8]}@example.org"

# Public routes.
for operation_id in ["health", "liveness", "readiness", "instanceKeys", "listSchemas"]:
    call(operation_id, 200)
call("getItemSchema", 200, path={"network": "yellow_dot", "domain": "student", "itemType": "profile_1.0"})

# Accounts.
signed_up = call("signUpEmail", 200, body={"name": "Gate", "email": email, "password": password}) or {}
token = signed_up.get("token", "")
bearer = {"Authorization": f"Bearer {token}"}
call("getSession", 200)
call("getSession", 200, headers=bearer)
signed_in = call("signInEmail", 200, body={"email": email, "password": password}) or {}
call("signOut", 200, headers={"Authorization": f"Bearer {signed_in.get('token', '')}"})
created_key = call("createApiKey", 200, body={"name": "gate"}, headers=bearer) or {}
api_key = {"x-api-key": created_key.get("key", "")}
spare_key = call("createApiKey", 200, body={"name": "spare", "expiresIn": 3600}, headers=bearer) or {}
call("listApiKeys", 200, headers=bearer)
call("deleteApiKey", 200, body={"keyId": spare_key.get("id", "")}, headers=bearer)
new_password = password + " again"
call(
    "changePassword",
    200,
    body={"currentPassword": password, "newPassword": new_password, "revokeOtherSessions": False},
    headers=bearer,
)

# A second account, deleted again.
other = call("signUpEmail", 200, body={"name": "Other", "email": "x" + email, "password": password}) or {}
call("deleteUser", 200, body={"password": password}, headers={"Authorization": f"Bearer {other.get('token', '')}"})

# Items: one with coordinates, one without; one updated, one deleted.
student = {
    "item_network": "yellow_dot",
    "item_domain": "student",
    "item_type": "profile_1.0",
    "item_state": {"name": "Asha", "grade": "10", "city": "Pune"},
    "item_latitude": 18.52,
    "item_longitude": 73.85,
}
tutor = {
    "item_network": "yellow_dot",
    "item_domain": "tutor",
    "item_type": "profile_1.0",
    "item_state": {"name": "Ravi", "subjects": ["math"], "experience_years": 3},
}
created = call("createItem", 201, body=student, headers=api_key) or {}
call("createItem", 201, body=tutor, headers=api_key)
doomed = call("createItem", 201, body=tutor, headers=api_key) or {}
call("fetchItems", 200, query={"item_network": "yellow_dot", "item_domain": "tutor"}, headers=api_key)
call(
    "fetchItems",
    200,
    query={"item_network": "yellow_dot", "item_domain": "student", "limit": 1},
    headers=api_key,
)
call(
    "updateItem",
    200,
    path={"itemId": created.get("item_id", "")},
    body={"item_state": {"name": "Asha", "grade": "11", "city": "Pune"}, "item_latitude": None, "item_longitude": None},
    headers=api_key,
)
call("deleteItem", 204, path={"itemId": doomed.get("item_id", "")}, headers=api_key)

# Network reads and the peer routes (unsigned calls are accepted in the default permissive mode).
for domain in ["student", "tutor"]:
    page = call("fetchNetworkItems", 200, query={"item_network": "yellow_dot", "item_domain": domain, "limit": 1}) or {}
    cursor = (page.get("meta") or {}).get("next_cursor")
    if cursor:
        call("fetchNetworkItems", 200, query={"item_network": "yellow_dot", "item_domain": domain, "cursor": cursor})
call("countLocalItems", 200, body={"item_network": "yellow_dot", "item_domain": "tutor"})
call("fetchLocalItems", 200, body={"item_network": "yellow_dot", "item_domain": "tutor", "limit": 10, "offset": 0})

# The development identity may reload the documents and look after the event outbox.
call("refetchSchemas", 200)
call("adminOutbox", 200, query={"limit": 10})
call("adminOutboxRedrive", 200)

# Bodies refused before any handler runs, on every operation that takes one: a media type
# other than JSON (415) and a body over the 1 MiB limit (413). Operations without a body
# get the oversized one too and must still answer as documented, whatever they answer.
too_large = b'"' + b"a" * (1024 * 1024) + b'"'
for operation in schema.get_all_operations():
    operation = operation.ok()
    operation_id = operation.definition.raw["operationId"]
    path = {name: str(uuid.uuid4()) for name in re.findall(r"{(\w+)}", operation.path)}
    if operation.body:
        call(operation_id, 415, path=path, headers=api_key, raw=("text/plain", b"x"))
        call(operation_id, 413, path=path, headers=api_key, raw=("application/json", too_large))
    else:
        call(operation_id, None, path=path, headers=api_key, raw=("application/json", too_large))

if findings:
    print(f"{len(findings)} of {steps} scenario steps broke the document:", file=sys.stderr)
    for finding in findings:
        print(f"- {finding}", file=sys.stderr)
    sys.exit(1)
print(f"{steps} scenario steps answered as documented", file=sys.stderr)
print(created_key.get("key", ""))
