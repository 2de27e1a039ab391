#!/usr/bin/env bash
# Runs every test of the project: builds the guest components once, then the host's
# unit, property, engine and end-to-end tests (which drive the real binary), and the
# SDK's unit and doc tests. Everything builds with the release profile: one build.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

scripts/build-guests.sh
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --release --workspace --no-fail-fast
else
    cargo test --release --workspace --no-fail-fast --lib --bins --tests
fi
cargo test --release --doc -p spool-sdk
