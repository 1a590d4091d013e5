#!/usr/bin/env bash
# Install what is missing, build importfs, and mount a demo Import.io account
# (served by the built-in emulator) in the foreground. Ctrl-C unmounts.
#   scripts/demo.sh [MOUNTPOINT]      (default: ./demo-mount)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_rust
ensure_system
cargo build --release --quiet
MNT="${1:-$ROOT/demo-mount}"
mkdir -p "$MNT"
exec "$ROOT/target/release/importfs" demo "$MNT"
