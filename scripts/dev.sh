#!/usr/bin/env bash
# Builds everything and runs the dev server with the example workflows uploaded:
# API on http://127.0.0.1:7233, web UI on http://127.0.0.1:8233, journal ./spool.db.
# Extra arguments go to `spool server start-dev` (e.g. --db /tmp/x.db --port 7300).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/build-guests.sh
cargo build --release -p spool
exec target/release/spool server start-dev \
    --module onboarding=target/guests/onboarding.wasm \
    --module expense-approval=target/guests/expense-approval.wasm \
    --module continuous=target/guests/continuous.wasm \
    --module team-onboarding=target/guests/team-onboarding.wasm \
    --module research-agent=target/guests/research-agent.wasm \
    --module order-saga=target/guests/order-saga.wasm \
    --module parallel=target/guests/parallel.wasm \
    "$@"
