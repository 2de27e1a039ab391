#!/usr/bin/env bash
# Fuzzes the decoders of untrusted bytes: the HTTP API's JSON request bodies (target
# api_json) and the journal's stored events (journal_event), SECONDS each (default 60).
# Installs cargo-fuzz if it is missing. The targets (fuzz/) build the crate
# spool-formats alone, never the host and its wasmtime, so the build takes about a minute.
#
# Runs on stable Rust: without a sanitizer (Address Sanitizer needs nightly's -Z flags;
# the decoders are safe Rust, where a bug shows as a panic, which libFuzzer catches),
# with debug assertions and overflow checks on. Each target starts from its committed
# seeds (fuzz/seeds/TARGET) and what earlier runs found (fuzz/corpus/TARGET, not
# committed). A failing input is written to fuzz/artifacts/TARGET/; replay it with
#   cargo fuzz run --sanitizer none TARGET fuzz/artifacts/TARGET/crash-…
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${1:-60}"
targets=(api_json journal_event)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz --version 0.13.2
fi

cargo fuzz build --sanitizer none
failed=()
for target in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$target"
    log="fuzz/target/$target.log"
    if cargo fuzz run --sanitizer none "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" \
        -- -max_total_time="$seconds" -timeout=10 >"$log" 2>&1; then
        echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$log" || echo "done")"
    else
        # Everything but libFuzzer's progress lines: the panic, the input, how to replay.
        grep -vE '^#[0-9]+' "$log" | tail -n 150
        echo "fuzz $target: FAILED (full log: $log; input in fuzz/artifacts/$target/)"
        failed+=("$target")
    fi
done
if ((${#failed[@]})); then
    exit 1
fi
