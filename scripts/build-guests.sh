#!/usr/bin/env bash
# Builds every guest component (example workflows, test workflows, test activities)
# for wasm32-wasip2 in one cargo invocation, and copies them to target/guests/<name>.wasm.
# Works from any directory.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# Cargo package names; each builds target/wasm32-wasip2/release/<name with _>.wasm.
guests=(onboarding expense-approval continuous team-onboarding research-agent order-saga parallel hostile bomb sockets steps steps-changed http-activity progress-activity relay approval cancellable family)

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    rustup target add wasm32-wasip2 >/dev/null
fi

packages=()
for guest in "${guests[@]}"; do
    packages+=(-p "$guest")
done
# Debug info is stripped: it would triple the components' size for nothing.
CARGO_PROFILE_RELEASE_STRIP=debuginfo cargo build --release --target wasm32-wasip2 "${packages[@]}"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="$target_dir/guests"
mkdir -p "$out"
for guest in "${guests[@]}"; do
    cp "$target_dir/wasm32-wasip2/release/${guest//-/_}.wasm" "$out/$guest.wasm"
done

echo "guest components in $out:"
for guest in "${guests[@]}"; do
    printf '  %-20s %10d bytes\n' "$guest.wasm" "$(wc -c <"$out/$guest.wasm")"
done
