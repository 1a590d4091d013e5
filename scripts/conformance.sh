#!/usr/bin/env bash
# Conformance of the emulator to the vendored Import.io spec, by schemathesis:
# build importfs, start `importfs emulator` on a free port with a known key,
# run `st run` over tests/importio-openapi.yaml with positive and negative
# data and every check but the ones named below, stop the emulator on exit.
# Exits non-zero on any failure. Extra arguments go to `st run` (for example
# `--max-examples 20` for a quick pass, or `--seed N` to replay a run).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

ensure_rust
ensure_venv
ST="$VENV/bin/st"

# IMPORTFS_BIN: use an already built binary instead of building one.
if [ -n "${IMPORTFS_BIN:-}" ]; then
    BIN="$IMPORTFS_BIN"
else
    cargo build --quiet --bin importfs
    BIN="$ROOT/target/debug/importfs"
fi

WORK="$(mktemp -d)"
EMU_PID=""
cleanup() {
    if [ -n "$EMU_PID" ] && kill -0 "$EMU_PID" 2>/dev/null; then
        kill "$EMU_PID" 2>/dev/null || true
        wait "$EMU_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# A free port: bind port 0 and read what the kernel gave.
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
export IMPORTFS_CONFORMANCE_KEY="conformance-$RANDOM-$RANDOM"
# The key goes through the environment, not argv (ps shows argv).
IMPORTIO_API_KEY="$IMPORTFS_CONFORMANCE_KEY" RUST_LOG=warn \
    "$BIN" emulator --listen "127.0.0.1:$PORT" --run-seconds 0 >"$WORK/emulator.out" 2>"$WORK/emulator.err" &
EMU_PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$URL/users/current?_apikey=$IMPORTFS_CONFORMANCE_KEY" 2>/dev/null; then break; fi
    if ! kill -0 "$EMU_PID" 2>/dev/null; then
        echo "the emulator did not start:" >&2; cat "$WORK/emulator.err" >&2; exit 1
    fi
    sleep 0.1
done

# The key is the spec's `apiKeyAuth` scheme (a query parameter) and also an
# explicit required `_apikey` parameter of every operation: give schemathesis
# both, so that generated cases authenticate and `ignored_auth` can still
# check that a request without it is refused.
cat >"$WORK/schemathesis.toml" <<'EOF'
[auth.openapi.apiKeyAuth]
api_key = "${IMPORTFS_CONFORMANCE_KEY}"

[parameters]
"query._apikey" = "${IMPORTFS_CONFORMANCE_KEY}"
EOF

# Two passes, every check in both, with one exclusion in the negative pass:
#
# - positive data (schema-valid requests), all checks: every answer must be
#   documented, schema-valid, of the declared content type, accepted, etc.
# - negative data (schema-violating requests), all checks except
#   status_code_conformance. The spec declares ids as `format: uuid`, enums
#   for `_sortDirection` and `fileType`, integers for `_page`/`_perpage` and
#   required request bodies, yet lists no 4xx status for violating them (only
#   401/403/404). Issue 2 requires 400 for a malformed id, query value or
#   body, which negative_data_rejection (kept) then checks; the status list
#   of the spec cannot hold it, so that one check is off for this pass.
#
# `--run-seconds 0`: runs finish at once, so a `start` never meets a run in
# progress. The live service answers that with 400, which the spec does not
# list either; tests/emulator.rs covers it.
#
# One worker: with several, hypothesis' lambda-description cache is not
# thread safe and now and then aborts an operation with a "Runtime Error"
# (AST constructor recursion depth mismatch) that says nothing of the API.
# Such a tool error, with no failure reported, is run once more; a failure
# of a check never is.
run_st_once() {
    "$ST" --config-file "$WORK/schemathesis.toml" run tests/importio-openapi.yaml \
        --url "$URL" \
        --checks all \
        --workers 1 \
        --request-timeout 20 \
        --no-color \
        "$@"
}

run_st() {
    local out="$WORK/st.out" rc=0
    run_st_once "$@" 2>&1 | tee "$out" || rc=$?
    if [ "$rc" -ne 0 ] && grep -q "Runtime Error" "$out" && ! grep -q "= FAILURES =" "$out"; then
        echo "== schemathesis stopped on an error of its own (no check failed): once more"
        rc=0
        run_st_once "$@" || rc=$?
    fi
    return "$rc"
}

status=0
echo "== schemathesis: positive data, all checks"
run_st --mode positive "$@" || status=$?
echo "== schemathesis: negative data, all checks but status_code_conformance"
run_st --mode negative --exclude-checks status_code_conformance "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "conformance: schemathesis reported failures" >&2
    echo "--- emulator stderr (last lines)" >&2
    tail -n 20 "$WORK/emulator.err" >&2 || true
else
    echo "conformance: no failures"
fi
exit "$status"
