#!/usr/bin/env bash
# Measure, side by side in one run, what a user feels:
#   - curl of a 1 GiB data.csv from the emulator (the network-side ceiling)
#   - a cold `cat` of it through the mount, and a warm one (page cache)
#   - `cat` of a local copy in the page cache (the local ceiling)
#   - `ls -l` of 10,000 runs, against curl of the same list pages
#   - peak RSS of the mount and of the emulator
# Speeds are MB/s (10^6 bytes), best of BENCH_RUNS (default 3); ratios are
# what to compare across machines. Usage: scripts/bench.sh [SIZE_BYTES]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_rust
ensure_system

SIZE="${1:-1073741824}"
RUNS="${BENCH_RUNS:-3}"
KEY="bench-$RANDOM$RANDOM"
cargo build --release --quiet
BIN="$ROOT/target/release/importfs"
WORK="$(mktemp -d)"
MNT="$WORK/mnt"
mkdir -p "$MNT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"

cleanup() {
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
    [ -n "${MOUNT_PID:-}" ] && kill "$MOUNT_PID" 2>/dev/null || true
    [ -n "${EMU_PID:-}" ] && kill "$EMU_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

IMPORTIO_API_KEY="$KEY" "$BIN" emulator --listen "127.0.0.1:$PORT" --api-key "$KEY" \
    --dataset scale --extractors 100 --crawlruns 10000 --result-bytes "$SIZE" >"$WORK/emu.log" 2>&1 &
EMU_PID=$!
for _ in $(seq 100); do curl -sf "$URL/users/current?_apikey=$KEY" >/dev/null && break; sleep 0.1; done

RUN=$(curl -sf "$URL/crawlruns/?_apikey=$KEY&_perpage=50" | python3 -c '
import json,sys
print(next(r["guid"] for r in json.load(sys.stdin) if r.get("state")=="FINISHED"))')

# seconds → MB/s
mbps() { python3 -c "print(f'{$1/$2/1e6:.0f}')"; }
best() { sort -n | head -1; }
timeit() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); python3 -c "print($t1-$t0)"; }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "importfs bench: data.csv of $SIZE bytes, best of $RUNS"

T_CURL=$(for _ in $(seq "$RUNS"); do timeit curl -sf -o /dev/null "$URL/crawlruns/$RUN/csv?_apikey=$KEY"; done | best)

mount_fresh() {
    fusermount3 -u "$MNT" 2>/dev/null || true
    [ -n "${MOUNT_PID:-}" ] && { kill "$MOUNT_PID" 2>/dev/null || true; wait "$MOUNT_PID" 2>/dev/null || true; }
    rm -rf "$WORK/cache"
    IMPORTIO_API_KEY="$KEY" "$BIN" mount --foreground "$MNT" --api-url "$URL" \
        --cache-dir "$WORK/cache" --cache-size 4G --metadata-ttl 60s >"$WORK/mount.log" 2>&1 &
    MOUNT_PID=$!
    for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
    mountpoint -q "$MNT" || { cat "$WORK/mount.log"; exit 1; }
}

T_COLD=999999; T_WARM=999999
for _ in $(seq "$RUNS"); do
    mount_fresh
    stat "$MNT/crawlruns/$RUN/data.csv" >/dev/null
    t=$(timeit cat "$MNT/crawlruns/$RUN/data.csv")
    T_COLD=$(printf '%s\n%s\n' "$T_COLD" "$t" | best)
    for _ in 1 2; do
        t=$(timeit cat "$MNT/crawlruns/$RUN/data.csv")
        T_WARM=$(printf '%s\n%s\n' "$T_WARM" "$t" | best)
    done
done
# The same bytes as a local file in the page cache.
cp "$MNT/crawlruns/$RUN/data.csv" "$WORK/local.csv"
cat "$WORK/local.csv" >/dev/null
T_LOCAL=$(for _ in $(seq "$RUNS"); do timeit cat "$WORK/local.csv"; done | best)
RSS_READ=$(rss_kb "$MOUNT_PID")
rm -f "$WORK/local.csv"

# ls -l of 10,000 runs: a fresh mount (nothing cached) against curl of the same pages.
PAGES=$(( (10000 + 999) / 1000 ))
T_LIST_CURL=$(for _ in $(seq "$RUNS"); do timeit bash -c "for p in \$(seq $PAGES); do curl -sf \"$URL/crawlruns/?_apikey=$KEY&_perpage=1000&_page=\$p\"; done"; done | best)
T_LS=999999
for _ in $(seq "$RUNS"); do
    mount_fresh
    ls "$MNT" >/dev/null
    t=$(timeit ls -l "$MNT/crawlruns")
    T_LS=$(printf '%s\n%s\n' "$T_LS" "$t" | best)
done
N=$(ls "$MNT/crawlruns" | wc -l)
RSS_LIST=$(rss_kb "$MOUNT_PID")
RSS_EMU=$(rss_kb "$EMU_PID")

python3 - "$SIZE" "$T_CURL" "$T_COLD" "$T_WARM" "$T_LOCAL" "$T_LIST_CURL" "$T_LS" "$N" "$RSS_READ" "$RSS_LIST" "$RSS_EMU" <<'EOF'
import sys
size, curl, cold, warm, local, lcurl, ls = map(float, sys.argv[1:8])
n, rss_read, rss_list, rss_emu = map(int, sys.argv[8:12])
mb = lambda t: size / t / 1e6
print(f"curl of data.csv            {mb(curl):8.0f} MB/s")
print(f"cold cat through the mount  {mb(cold):8.0f} MB/s   {cold and curl/cold:5.2f} x curl")
print(f"warm cat through the mount  {mb(warm):8.0f} MB/s   {warm and local/warm:5.2f} x local page-cache cat")
print(f"cat of a local copy (warm)  {mb(local):8.0f} MB/s")
print(f"ls -l of {n} runs         {ls:8.2f} s      {ls and lcurl/ls:5.2f} x curl of the same pages ({lcurl:.2f} s)")
print(f"peak RSS of the mount       {rss_read/1024:8.1f} MiB (streaming), {rss_list/1024:.1f} MiB (listing)")
print(f"peak RSS of the emulator    {rss_emu/1024:8.1f} MiB")
EOF
