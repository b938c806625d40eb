#!/usr/bin/env bash
# API quality gate: the committed OpenAPI document must be a valid OpenAPI document, and a
# live embedded instance must answer as the document says (status codes, content types,
# response headers and bodies) and without server errors: first the successful paths and
# the refused bodies of tests/api-gate/scenarios.py, then schemathesis-generated requests,
# valid and invalid, to every operation. Any finding fails the gate.
#
# Python tools come from PyPI, pinned in tests/api-gate/requirements.txt, into a virtual
# environment under the cargo target directory (reused while the pins are unchanged).
# Knobs: API_GATE_MAX_EXAMPLES (per operation and phase), API_GATE_SEED, API_GATE_WORKERS.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

REQUIREMENTS=tests/api-gate/requirements.txt
MAX_EXAMPLES=${API_GATE_MAX_EXAMPLES:-100}
SEED=${API_GATE_SEED:-20261128}
WORKERS=${API_GATE_WORKERS:-2}

TARGET_DIR=${CARGO_TARGET_DIR:-target}
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
VENV="$TARGET_DIR/api-gate-venv"
started=$(date +%s)

say() { printf '[api-gate] %s\n' "$*"; }
# `lap NAME`: NAME := seconds since the previous lap, for the summary.
lap_mark=$started
lap() { local now; now=$(date +%s); printf -v "$1" '%s' $(( now - lap_mark )); lap_mark=$now; }

# --- Python tools -------------------------------------------------------------------------
# The venv keeps a copy of the requirements it was installed from.
STAMP="$VENV/api-gate-requirements.txt"
pins=$(grep -E '^(schemathesis|openapi-spec-validator)==' "$REQUIREMENTS" | tr '\n' ' ')
if [ -x "$VENV/bin/python" ] && cmp -s "$REQUIREMENTS" "$STAMP"; then
  say "pinned tools already in $VENV: $pins"
else
  say "installing pinned tools into $VENV: $pins"
  rm -f "$STAMP"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  cp "$REQUIREMENTS" "$STAMP"
fi

# --- The document -------------------------------------------------------------------------
lap t_tools
say "validating openapi/openapi.json"
"$VENV/bin/openapi-spec-validator" openapi/openapi.json

# --- A live embedded instance -------------------------------------------------------------
lap t_validate
say "building dpg"
cargo build -p dpg-app --locked --quiet
lap t_build
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dpg-api-gate.XXXXXX")

SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Run a copy, so a concurrent build in the same target directory cannot swap the binary.
cp "$TARGET_DIR/debug/dpg" "$WORK/dpg"
# The instance under test must serve the committed document (else the run would check one
# thing and report on another: a stale build, or a document not regenerated).
if ! "$WORK/dpg" openapi 2>/dev/null | cmp -s - openapi/openapi.json; then
  say "the built dpg does not generate openapi/openapi.json: regenerate it with" >&2
  say "  UPDATE_OPENAPI=1 cargo test -p dpg-openapi committed_document" >&2
  exit 1
fi

PORT=$("$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
# The example network names this instance at the default port: point it at ours, so the
# instance serves its bindings itself and never calls anything else.
"$VENV/bin/python" - "$ROOT/examples/dev.network.json" "$WORK/network.json" "$BASE" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
for instance in doc.get("instances", []):
    instance["instance_url"] = sys.argv[3]
json.dump(doc, open(sys.argv[2], "w"))
EOF

mkdir -p "$WORK/data"
say "starting dpg on $BASE"
(
  cd "$WORK"
  exec env -u DATABASE_URL -u POSTGRES_URL -u POSTGRES_HOST -u POSTGRES_PORT -u DATABASE_PORT \
    -u POSTGRES_USER -u POSTGRES_PASSWORD -u POSTGRES_DB -u REDIS_URL -u REDIS_HOST \
    -u REDIS_PORT -u REDIS_PASSWORD -u AUTH_MIDDLEWARE_ENABLED -u DPG_INSTANCE_KEY \
    -u DPG_INSTANCE_KEY_FILE -u NETWORK_CONFIG_SOURCE -u SCHEMA_REGISTRY_URL \
    -u NETWORK_CONFIG_URLS -u SERVED_DOMAINS \
    INSTANCE_ENV=development \
    INSTANCE_NAME=api-gate \
    API_BIND=127.0.0.1 \
    API_PORT="$PORT" \
    API_DOMAIN=http://127.0.0.1 \
    DPG_DATA_DIR="$WORK/data" \
    NETWORK_CONFIG_LOCAL_FILE="$WORK/network.json" \
    LOG_FORMAT=json \
    RUST_LOG=info \
    "$WORK/dpg" serve
) >"$WORK/dpg.log" 2>&1 &
SERVER_PID=$!

ready=""
for _ in $(seq 1 300); do
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
  if "$VENV/bin/python" -c "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('$BASE/health/ready', timeout=1).status == 200 else 1)" 2>/dev/null; then
    ready=yes
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  say "dpg did not become ready; its log:" >&2
  tail -n 50 "$WORK/dpg.log" >&2
  exit 1
fi

# --- Scenarios, then schemathesis ---------------------------------------------------------
say "scenarios: the successful paths, checked against the document"
if ! API_KEY=$(cd "$WORK" && "$VENV/bin/python" "$ROOT/tests/api-gate/scenarios.py" "$ROOT/openapi/openapi.json" "$BASE"); then
  say "FAILED after $(( $(date +%s) - started ))s: scenario answers outside the document" >&2
  exit 1
fi
API_KEY=$(printf '%s\n' "$API_KEY" | tail -n 1)
lap t_scenarios

say "schemathesis: $MAX_EXAMPLES examples per operation and phase, seed $SEED"
status=0
# The API key of the scenarios' account: protected operations get past authentication and
# meet that account's items.
# (Run from the scratch directory: schemathesis keeps a cache in its working directory.)
(cd "$WORK" && "$VENV/bin/schemathesis" run "$ROOT/openapi/openapi.json" \
  --url "$BASE" \
  --header "x-api-key: $API_KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed "$SEED" \
  --workers "$WORKERS" \
  --request-timeout 10 \
  --generation-database none \
  --no-color) \
  || status=$?

lap t_fuzz
elapsed=$(( $(date +%s) - started ))
if [ "$status" -ne 0 ]; then
  say "FAILED after ${elapsed}s: schemathesis reported findings (exit $status); the instance's errors:" >&2
  grep '"level":"ERROR"' "$WORK/dpg.log" | tail -n 20 >&2 || true
  exit 1
fi
if grep -q '"level":"ERROR"' "$WORK/dpg.log"; then
  say "FAILED after ${elapsed}s: the instance logged errors:" >&2
  grep '"level":"ERROR"' "$WORK/dpg.log" | tail -n 20 >&2
  exit 1
fi
say "ok in ${elapsed}s (tools ${t_tools}s, build ${t_build}s, start and scenarios ${t_scenarios}s, schemathesis ${t_fuzz}s): document valid; no server errors and no responses outside the document"
