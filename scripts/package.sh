#!/usr/bin/env bash
# Build what a user installs into one folder (target/package/, or $1), and
# print the sizes:
#   importfs_VERSION-1_amd64.deb          `cargo deb`: /usr/bin/importfs (stripped),
#       a man page per command, bash/zsh/fish completions, importfs@.service
#       (ExecStart=/usr/bin/importfs),
#       the README and the copyright file (see [package.metadata.deb] in Cargo.toml)
#   importfs-VERSION-x86_64-unknown-linux-musl   one static binary, for any Linux
# The man pages and completions are written by the built binary itself into
# target/assets/, where Cargo.toml's deb assets take them from.
# Installs cargo-deb, musl-tools and Rust's musl target when missing.
# PACKAGE_SKIP_BUILD=1 packages the binaries already built (no cargo build).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_rust
ensure_pkg python3 python3
ensure_package_tools

OUT="$(mkdir -p "${1:-$ROOT/target/package}" && cd "${1:-$ROOT/target/package}" && pwd)"
TARGET="$(target_dir)"
MUSL=x86_64-unknown-linux-musl
VERSION="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["packages"][0]["version"])')"
changelog="$(sed -n '1s/^importfs (\([^)]*\)).*/\1/p' debian/changelog)"
if [ "$changelog" != "$VERSION-1" ]; then
    echo "debian/changelog's first entry is $changelog, the package is $VERSION-1: add an entry" >&2
    exit 1
fi
if [ "${PACKAGE_SKIP_BUILD:-0}" != 1 ]; then
    echo "== cargo build --release"
    nice -n 10 cargo build --release --locked
    echo "== cargo build --release --target $MUSL"
    # ring's C and assembly: musl-gcc (Debian's musl-tools) links them against musl.
    CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-musl-gcc}" \
        nice -n 10 cargo build --release --locked --target "$MUSL"
fi

echo "== man pages and completions (target/assets)"
BIN="$TARGET/release/importfs"
rm -rf "$ROOT/target/assets"
mkdir -p "$ROOT/target/assets/man" "$ROOT/target/assets/completions"
"$BIN" manpage --dir "$ROOT/target/assets/man"
"$BIN" completions bash >"$ROOT/target/assets/completions/importfs.bash"
"$BIN" completions zsh >"$ROOT/target/assets/completions/_importfs"
"$BIN" completions fish >"$ROOT/target/assets/completions/importfs.fish"
# The unit as the package installs it: the binary is /usr/bin/importfs, and
# the unit is in place already (no `install` step to do).
sed -e 's#/usr/local/bin/importfs#/usr/bin/importfs#g' \
    -e 's#^\(\#   \)sudo install -m 644 scripts/importfs@.service /etc/systemd/system/$#\1(installed by the importfs package in /usr/lib/systemd/system)#' \
    scripts/importfs@.service >"$ROOT/target/assets/importfs@.service"
grep -q '^ExecStart=/usr/bin/importfs ' "$ROOT/target/assets/importfs@.service"

echo "== cargo deb"
rm -f "$OUT"/importfs_*.deb "$OUT"/importfs-*-"$MUSL"
cargo deb --no-build --locked --output "$OUT"
cp "$TARGET/$MUSL/release/importfs" "$OUT/importfs-$VERSION-$MUSL"

echo "== built into $OUT"
for f in "$OUT"/importfs_*.deb "$OUT/importfs-$VERSION-$MUSL"; do
    printf '%-48s %6.1f MB\n' "$(basename "$f")" "$(stat -c %s "$f" | awk '{print $1 / 1e6}')"
done
