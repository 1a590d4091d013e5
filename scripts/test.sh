#!/usr/bin/env bash
# Install what is missing, then run every test: formatting, lints, unit and
# integration tests (real FUSE mounts over the emulator), and the schemathesis
# conformance run of the emulator against the vendored spec.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_system
ensure_venv

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== layout (module docs, function and file sizes, no import circles)"
python3 scripts/layout.py src
echo "== cargo test"
cargo test --all-targets -- --test-threads=4
echo "== conformance (schemathesis)"
bash scripts/conformance.sh
echo "== all tests passed"
