#!/usr/bin/env bash
# Everything the tests need, in one command: formatting, lints, the core purity guard and
# the whole test suite (unit, adapter suites on SQLite/PostgreSQL and memory/Redis, HTTP,
# OpenAPI drift), then the API gate (tests/api-gate.sh). PostgreSQL and Redis must answer (see
# .ci/run); tests fail if they do not.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "core purity guard"
if cargo tree -p dpg-core -e normal --prefix none --format '{p}' | grep -qE '^(sea-orm|sea-query|sqlx|poem|poem-openapi|redis|bb8|reqwest|tokio|hyper) '; then
  echo "dpg-core must not depend on database, HTTP, Redis or runtime crates:" >&2
  cargo tree -p dpg-core -e normal --prefix none --format '{p}' | grep -E '^(sea-orm|sea-query|sqlx|poem|poem-openapi|redis|bb8|reqwest|tokio|hyper) ' >&2
  exit 1
fi
echo "ok"

step "build the dpg binary (the devnet test and the API gate run it)"
cargo build --locked -p dpg-app

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi

step "API gate (OpenAPI validator, scenarios and schemathesis against a live instance)"
tests/api-gate.sh
