#!/usr/bin/env bash
# Check that importfs compiles for macOS, from this Linux machine: `cargo
# check` and `cargo clippy -D warnings` of every target (lib, bin, tests) for
# aarch64-apple-darwin and x86_64-apple-darwin, without and with the
# `macfuse` feature (built with fuser's `macos-no-mount`, since macFUSE's
# libfuse is not here to link).
#
# Set-up, done once: `rustup target add` for both targets, and `zig cc`
# (PyPI `ziglang`, in the project's venv) as the C cross compiler for the
# crates that build C (ring). The `cc` crate passes clang's `--target=`
# and `-arch`; zig takes its target from its own `-target`, so it is
# called through a small wrapper that drops those.
#
# Exit status: 0 when every check passes; 1 on a compile error or warning;
# 2 when the set-up cannot be done here (no rustup, no network), with the
# reason printed, so that scripts/test.sh can go on without it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)
setup_failed() { echo "check-macos: cannot set up: $*" >&2; exit 2; }

command -v rustup >/dev/null || setup_failed "rustup is missing (the targets come from it)"
installed=$(rustup target list --installed 2>/dev/null || true)
for t in "${TARGETS[@]}"; do
    if ! grep -qx "$t" <<<"$installed"; then
        rustup target add "$t" >/dev/null 2>&1 || setup_failed "rustup target add $t failed"
    fi
done

ensure_venv_only || setup_failed "no Python venv"
if ! "$VENV/bin/python" -m ziglang version >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q --disable-pip-version-check ziglang >/dev/null 2>&1 \
        || setup_failed "pip install ziglang failed"
fi

# The wrappers: zig cc / zig ar for each target, under the venv (not committed).
wrap="$VENV/zig-wrappers"
mkdir -p "$wrap"
for t in "${TARGETS[@]}"; do
    zt="${t%%-*}-macos"
    cat >"$wrap/cc-$t" <<WRAP
#!/usr/bin/env bash
# zig cc for $t: drop the target flags the cc crate passes (zig has its own).
args=(); skip=0
for a in "\$@"; do
    if [ "\$skip" = 1 ]; then skip=0; continue; fi
    case "\$a" in
        --target=*|-mmacosx-version-min=*) ;;
        -arch|-target) skip=1 ;;
        *) args+=("\$a") ;;
    esac
done
exec "$VENV/bin/python" -m ziglang cc -target $zt "\${args[@]}"
WRAP
    chmod +x "$wrap/cc-$t"
    env_t=${t//-/_}
    export "CC_$env_t=$wrap/cc-$t"
done
cat >"$wrap/ar" <<WRAP
#!/usr/bin/env bash
exec "$VENV/bin/python" -m ziglang ar "\$@"
WRAP
chmod +x "$wrap/ar"
for t in "${TARGETS[@]}"; do export "AR_${t//-/_}=$wrap/ar"; done
# zig keeps a cache of its own; keep it with the build output.
export ZIG_GLOBAL_CACHE_DIR="$ROOT/target/zig-cache" ZIG_LOCAL_CACHE_DIR="$ROOT/target/zig-cache"

status=0
for t in "${TARGETS[@]}"; do
    for features in "" "macfuse,fuser/macos-no-mount"; do
        what="$t${features:+ --features $features}"
        flags=(--target "$t" --all-targets --quiet)
        [ -n "$features" ] && flags+=(--features "$features")
        echo "== cargo check $what"
        # A warning fails too: RUSTFLAGS would rebuild every dependency, so
        # the check's own output is searched for one instead.
        if ! out=$(cargo check "${flags[@]}" 2>&1) || grep -q '^warning' <<<"$out"; then
            echo "$out"
            status=1
        fi
        echo "== cargo clippy $what"
        cargo clippy "${flags[@]}" -- -D warnings || status=1
    done
done
[ "$status" = 0 ] && echo "== macOS: every check passed" || echo "== macOS: FAILED" >&2
exit "$status"
