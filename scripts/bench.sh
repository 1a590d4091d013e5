#!/usr/bin/env bash
# Measure, side by side in one run, what a user feels, as ratios:
#   - curl of a 1 GiB data.csv from the emulator (the network-side ceiling)
#   - a cold `cat` of it through the mount, against curl
#   - the same under a per-connection bandwidth cap (--conn-bytes-per-sec as
#     a runtime fault): one curl stream against the mount's parallel ranges
#   - the same cold cat on the memory path (a mount whose disk cache cannot
#     take the file, --cache-size 1M), uncapped and capped, against the disk
#     path's; and the mount's peak RSS while eight readers stream eight
#     different files through memory (default --max-memory 256M)
#   - the first and the last 4 KiB of a cold file, against its cold cat
#     (the mount fetches what is read: there is no download apart from it)
#   - a warm `cat` (and whether passthrough or the page cache served it)
#     against `cat` of a local copy in the page cache
#   - `ls -l` of 10,000 runs, against curl of the same list pages
#   - peak RSS of the mount (streaming, listing) and of the emulator
#   - the CPU seconds per GiB of the emulator, the client (curl, cat) and
#     the mount, for curl, a cold cat and the mount's download alone
#   - over TLS: a cold cat of a 512 MiB result through the mount against
#     curl --cacert of it, from the emulator serving HTTPS with a CA and a
#     certificate made by openssl at run time, with each one's CPU per GiB
#   - the same file over the NFS backend (`importfs serve nfs`), read by
#     libnfs's nfs-cat (a user-space client: the kernel may have none),
#     cold and warm, beside the FUSE mount's cold and warm cat
#   - a real kernel's NFS client (Debian's kernel in QEMU) reading a 256 MiB
#     result at rsize 128 KiB and 1 MiB: the ratio and the READ calls
#     (scripts/bench-guest.sh, which runs alone too)
# Times are best of BENCH_RUNS (default 3). Speeds are MB/s (10^6 bytes).
# Usage: scripts/bench.sh [SIZE_BYTES]; BENCH_CAP=bytes/s (default 200000000);
# BENCH_PROFILE=profiling for a build perf can symbolise.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_rust
ensure_system

SIZE="${1:-1073741824}"
RUNS="${BENCH_RUNS:-3}"
CAP="${BENCH_CAP:-200000000}"
KEY="bench-$RANDOM$RANDOM"
# BENCH_PROFILE=profiling: the same code with symbols kept, to run perf on
# the mount while it is measured (the release build is stripped).
PROFILE="${BENCH_PROFILE:-release}"
cargo build --profile "$PROFILE" --quiet
BIN="$(target_dir)/$PROFILE/importfs"
WORK="$(mktemp -d)"
MNT="$WORK/mnt"
mkdir -p "$MNT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL="http://127.0.0.1:$PORT"

cleanup() {
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
    [ -n "${MOUNT_PID:-}" ] && kill "$MOUNT_PID" 2>/dev/null || true
    [ -n "${EMU_PID:-}" ] && kill "$EMU_PID" 2>/dev/null || true
    [ -n "${NFS_PID:-}" ] && kill "$NFS_PID" 2>/dev/null || true
    fusermount3 -u "$WORK/tmnt" 2>/dev/null || fusermount3 -uz "$WORK/tmnt" 2>/dev/null || true
    [ -n "${TMOUNT_PID:-}" ] && kill "$TMOUNT_PID" 2>/dev/null || true
    [ -n "${TEMU_PID:-}" ] && kill "$TEMU_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

IMPORTIO_API_KEY="$KEY" "$BIN" emulator --listen "127.0.0.1:$PORT" --api-key "$KEY" \
    --dataset scale --extractors 100 --crawlruns 10000 --result-bytes "$SIZE" >"$WORK/emu.log" 2>&1 &
EMU_PID=$!
wait_for_api "$URL" "$KEY" || true

RUN=$(finished_run "$URL" "$KEY")
FILE="$MNT/crawlruns/$RUN/data.csv"
FILE_URL="$URL/crawlruns/$RUN/csv?_apikey=$KEY"

best() { sort -n | head -1; }
now() { date +%s.%N; }
timeit() { local t0 t1; t0=$(now); "$@" >/dev/null; t1=$(now); python3 -c "print($t1-$t0)"; }
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
stat_of() { awk -v k="$1" '$1 == k {print $2}' "$MNT/.importfs/stats"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f\n", ($14 + $15) / hz}' "/proc/$1/stat"; }
# Run a command; print its own CPU seconds (user + system, with children).
own_cpu() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{r.ru_utime + r.ru_stime:.3f}")
PY
}
cap() { curl -sf -X POST "$URL/_emulator/faults" -d "{\"operation\":\"getCrawlrunFile\",\"bytes_per_sec\":$CAP}" >/dev/null; }
uncap() { curl -sf -X DELETE "$URL/_emulator/faults" >/dev/null; }

# mount_fresh [CACHE_SIZE]: a new mount with an empty cache (default 4G).
mount_fresh() {
    fusermount3 -u "$MNT" 2>/dev/null || true
    [ -n "${MOUNT_PID:-}" ] && { kill "$MOUNT_PID" 2>/dev/null || true; wait "$MOUNT_PID" 2>/dev/null || true; }
    rm -rf "$WORK/cache"
    IMPORTIO_API_KEY="$KEY" "$BIN" mount --foreground "$MNT" --api-url "$URL" \
        --cache-dir "$WORK/cache" --cache-size "${1:-4G}" --metadata-ttl 60s >"$WORK/mount.log" 2>&1 &
    MOUNT_PID=$!
    for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.1; done
    mountpoint -q "$MNT" || { cat "$WORK/mount.log"; exit 1; }
    # The size (a HEAD) is known before any timing starts, as after an `ls -l`.
    stat "$FILE" >/dev/null
}

# Seconds from open() to holding 4 KiB at the start (head) or end (tail) of
# the file, timed inside one process so that no process start is counted.
first_bytes() {
    python3 - "$FILE" "$1" <<'PY'
import os, sys, time
path, where = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
fd = os.open(path, os.O_RDONLY)
off = 0 if where == "head" else os.fstat(fd).st_size - 4096
assert len(os.pread(fd, 4096, off)) == 4096
print(time.perf_counter() - t0)
PY
}

echo "importfs bench: data.csv of $SIZE bytes, best of $RUNS, cap $CAP B/s a connection"

T_CURL=$(for _ in $(seq "$RUNS"); do timeit curl -sf -o /dev/null "$FILE_URL"; done | best)

T_COLD=999999; T_WARM=999999; T_HEAD=999999; T_TAIL=999999
for _ in $(seq "$RUNS"); do
    mount_fresh
    t=$(timeit cat "$FILE"); T_COLD=$(printf '%s\n%s\n' "$T_COLD" "$t" | best)
    RSS_READ=$(rss_kb "$MOUNT_PID")
    pt0=$(stat_of passthrough_opens); kc0=$(stat_of keep_cache_opens)
    for _ in 1 2; do
        t=$(timeit cat "$FILE"); T_WARM=$(printf '%s\n%s\n' "$T_WARM" "$t" | best)
    done
    PT=$(( $(stat_of passthrough_opens) - pt0 )); KC=$(( $(stat_of keep_cache_opens) - kc0 ))
    mount_fresh
    t=$(first_bytes head); T_HEAD=$(printf '%s\n%s\n' "$T_HEAD" "$t" | best)
    mount_fresh
    t=$(first_bytes tail); T_TAIL=$(printf '%s\n%s\n' "$T_TAIL" "$t" | best)
done
WARM_MODE="read() with the page cache kept"
[ "$PT" -gt 0 ] && WARM_MODE="FUSE passthrough"
[ "$PT" -eq 0 ] && [ "$KC" -eq 0 ] && WARM_MODE="read(), no page cache"

# The same bytes as a local file in the page cache.
cp "$FILE" "$WORK/local.csv"
cat "$WORK/local.csv" >/dev/null
T_LOCAL=$(for _ in $(seq "$RUNS"); do timeit cat "$WORK/local.csv"; done | best)
rm -f "$WORK/local.csv"

# Under a per-connection bandwidth cap: one curl stream against the mount.
cap
CAP_RUNS=$(( RUNS < 2 ? RUNS : 2 ))
T_CURL_CAP=$(for _ in $(seq "$CAP_RUNS"); do timeit curl -sf -o /dev/null "$FILE_URL"; done | best)
T_COLD_CAP=999999
for _ in $(seq "$CAP_RUNS"); do
    mount_fresh
    t=$(timeit cat "$FILE"); T_COLD_CAP=$(printf '%s\n%s\n' "$T_COLD_CAP" "$t" | best)
    RSS_CAP=$(rss_kb "$MOUNT_PID")
done
# The memory path under the cap: the disk cache (1M) cannot take the file.
T_MEM_CAP=999999
for _ in $(seq "$CAP_RUNS"); do
    mount_fresh 1M
    t=$(timeit cat "$FILE"); T_MEM_CAP=$(printf '%s\n%s\n' "$T_MEM_CAP" "$t" | best)
done
uncap

# The memory path uncapped, its bytes checked once.
T_MEM=999999
for _ in $(seq "$RUNS"); do
    mount_fresh 1M
    t=$(timeit cat "$FILE"); T_MEM=$(printf '%s\n%s\n' "$T_MEM" "$t" | best)
done
cmp <(cat "$FILE") <(curl -sf "$FILE_URL") || { echo "the memory path's read differs from the API's bytes" >&2; exit 1; }
[ "$(stat_of data_memory_files)" -ge 1 ] || { echo "the memory path was not taken" >&2; exit 1; }
# Eight readers streaming eight different files through memory at once.
mount_fresh 1M
EIGHT=$(curl -sf "$URL/crawlruns/?_apikey=$KEY&_perpage=50" | python3 -c '
import json,sys
print(" ".join([r["guid"] for r in json.load(sys.stdin) if r.get("state")=="FINISHED"][:8]))')
for r in $EIGHT; do stat "$MNT/crawlruns/$r/data.csv" >/dev/null; done
PIDS=""
for r in $EIGHT; do cat "$MNT/crawlruns/$r/data.csv" >/dev/null & PIDS="$PIDS $!"; done
# shellcheck disable=SC2086
wait $PIDS
RSS_MEM8=$(rss_kb "$MOUNT_PID")

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

# Where the time goes: the CPU seconds each process spends, one more run of
# each (the emulator shares the cores; a real server would not).
e0=$(cpu_s "$EMU_PID"); c=$(own_cpu curl -sf -o /dev/null "$FILE_URL"); e1=$(cpu_s "$EMU_PID")
CPU_CURL="$(python3 -c "print($e1-$e0)") $c 0"
mount_fresh
e0=$(cpu_s "$EMU_PID"); m0=$(cpu_s "$MOUNT_PID"); c=$(own_cpu cat "$FILE")
e1=$(cpu_s "$EMU_PID"); m1=$(cpu_s "$MOUNT_PID")
CPU_COLD="$(python3 -c "print($e1-$e0)") $c $(python3 -c "print($m1-$m0)")"
mount_fresh 1M
e0=$(cpu_s "$EMU_PID"); m0=$(cpu_s "$MOUNT_PID"); c=$(own_cpu cat "$FILE")
e1=$(cpu_s "$EMU_PID"); m1=$(cpu_s "$MOUNT_PID")
CPU_MEM="$(python3 -c "print($e1-$e0)") $c $(python3 -c "print($m1-$m0)")"

# TLS: a second emulator serving HTTPS, its CA and certificate made now.
TLS_SIZE=$(( SIZE < 536870912 ? SIZE : 536870912 ))
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj "/CN=importfs bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$WORK/tls.key" -out "$WORK/tls.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$WORK/tls.ext"
openssl x509 -req -in "$WORK/tls.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
    -days 1 -extfile "$WORK/tls.ext" -out "$WORK/tls.pem" 2>/dev/null
TPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TURL="https://127.0.0.1:$TPORT"
IMPORTIO_API_KEY="$KEY" "$BIN" emulator --listen "127.0.0.1:$TPORT" --api-key "$KEY" \
    --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key" --dataset scale --extractors 2 \
    --crawlruns 4 --result-bytes "$TLS_SIZE" >"$WORK/temu.log" 2>&1 &
TEMU_PID=$!
wait_for_api "$TURL" "$KEY" --cacert "$WORK/ca.pem" || true
TRUN=$(finished_run "$TURL" "$KEY" --cacert "$WORK/ca.pem")
TFILE_URL="$TURL/crawlruns/$TRUN/csv?_apikey=$KEY"
TMNT="$WORK/tmnt"; mkdir -p "$TMNT"
tmount_fresh() {
    fusermount3 -u "$TMNT" 2>/dev/null || true
    [ -n "${TMOUNT_PID:-}" ] && { kill "$TMOUNT_PID" 2>/dev/null || true; wait "$TMOUNT_PID" 2>/dev/null || true; }
    rm -rf "$WORK/tcache"
    IMPORTIO_API_KEY="$KEY" "$BIN" mount --foreground "$TMNT" --api-url "$TURL" \
        --ca-cert "$WORK/ca.pem" --cache-dir "$WORK/tcache" --cache-size 4G \
        --metadata-ttl 60s >"$WORK/tmount.log" 2>&1 &
    TMOUNT_PID=$!
    for _ in $(seq 100); do mountpoint -q "$TMNT" && break; sleep 0.1; done
    mountpoint -q "$TMNT" || { cat "$WORK/tmount.log"; exit 1; }
    stat "$TMNT/crawlruns/$TRUN/data.csv" >/dev/null
}
# Both sides start with no dirty pages to write back (the sections before
# wrote gigabytes of cache files): without this sync the cold cat, which
# writes its cache file too, paid for earlier sections' writeback.
sync
T_TLS_CURL=$(for _ in $(seq "$RUNS"); do sync; timeit curl -sf --cacert "$WORK/ca.pem" -o /dev/null "$TFILE_URL"; done | best)
T_TLS_COLD=999999
for _ in $(seq "$RUNS"); do
    tmount_fresh
    sync
    t=$(timeit cat "$TMNT/crawlruns/$TRUN/data.csv"); T_TLS_COLD=$(printf '%s\n%s\n' "$T_TLS_COLD" "$t" | best)
done
cmp <(cat "$TMNT/crawlruns/$TRUN/data.csv") <(curl -sf --cacert "$WORK/ca.pem" "$TFILE_URL") \
    || { echo "the TLS read differs from the API's bytes" >&2; exit 1; }
e0=$(cpu_s "$TEMU_PID"); c=$(own_cpu curl -sf --cacert "$WORK/ca.pem" -o /dev/null "$TFILE_URL"); e1=$(cpu_s "$TEMU_PID")
CPU_TLS_CURL="$(python3 -c "print($e1-$e0)") $c 0"
tmount_fresh
e0=$(cpu_s "$TEMU_PID"); m0=$(cpu_s "$TMOUNT_PID"); c=$(own_cpu cat "$TMNT/crawlruns/$TRUN/data.csv")
e1=$(cpu_s "$TEMU_PID"); m1=$(cpu_s "$TMOUNT_PID")
CPU_TLS_COLD="$(python3 -c "print($e1-$e0)") $c $(python3 -c "print($m1-$m0)")"
fusermount3 -u "$TMNT" || true; kill "$TMOUNT_PID" "$TEMU_PID" 2>/dev/null || true
wait "$TMOUNT_PID" "$TEMU_PID" 2>/dev/null || true
TMOUNT_PID=; TEMU_PID=

# The NFS backend: a fresh server and an empty cache for each cold read.
NFS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
NFS_FILE="nfs://127.0.0.1/importfs/crawlruns/$RUN/data.csv?nfsport=$NFS_PORT&mountport=$NFS_PORT"
nfs_fresh() {
    [ -n "${NFS_PID:-}" ] && { kill "$NFS_PID" 2>/dev/null || true; wait "$NFS_PID" 2>/dev/null || true; }
    rm -rf "$WORK/nfs-cache"
    IMPORTIO_API_KEY="$KEY" "$BIN" serve nfs --listen "127.0.0.1:$NFS_PORT" --api-url "$URL" \
        --allow-unprivileged-ports --cache-dir "$WORK/nfs-cache" --cache-size 4G \
        --metadata-ttl 60s >"$WORK/nfs.log" 2>&1 &
    NFS_PID=$!
    for _ in $(seq 100); do grep -q 'serving NFSv3' "$WORK/nfs.log" && break; sleep 0.1; done
    nfs-ls "nfs://127.0.0.1/importfs/crawlruns/$RUN/?nfsport=$NFS_PORT&mountport=$NFS_PORT" >/dev/null
}
T_NFS_COLD=999999; T_NFS_WARM=999999
for _ in $(seq "$RUNS"); do
    nfs_fresh
    t=$(timeit nfs-cat "$NFS_FILE"); T_NFS_COLD=$(printf '%s\n%s\n' "$T_NFS_COLD" "$t" | best)
    t=$(timeit nfs-cat "$NFS_FILE"); T_NFS_WARM=$(printf '%s\n%s\n' "$T_NFS_WARM" "$t" | best)
done
[ "$(nfs-cat "$NFS_FILE" | cmp - <(curl -sf "$FILE_URL") && echo same)" = same ] \
    || { echo "the NFS read differs from the API's bytes" >&2; exit 1; }
kill "$NFS_PID"; wait "$NFS_PID" 2>/dev/null || true; NFS_PID=

python3 - "$SIZE" "$CAP" "$T_CURL" "$T_COLD" "$T_MEM" "$T_WARM" "$T_LOCAL" "$T_HEAD" "$T_TAIL" \
    "$T_CURL_CAP" "$T_COLD_CAP" "$T_LIST_CURL" "$T_LS" "$N" "$RSS_READ" "$RSS_CAP" "$RSS_LIST" \
    "$RSS_EMU" "$WARM_MODE" "$T_MEM_CAP" $CPU_CURL $CPU_COLD $CPU_MEM "$T_NFS_COLD" "$T_NFS_WARM" \
    "$TLS_SIZE" "$T_TLS_CURL" "$T_TLS_COLD" $CPU_TLS_CURL $CPU_TLS_COLD "$RSS_MEM8" <<'EOF'
import sys
a = sys.argv[1:]
size, cap = int(a[0]), int(a[1])
curl, cold, mem, warm, local, head, tail, curl_cap, cold_cap, lcurl, ls = map(float, a[2:13])
n, rss_read, rss_cap, rss_list, rss_emu = map(int, a[13:18])
mode, mem_cap = a[18], float(a[19])
cpu = [tuple(map(float, a[20 + 3 * i:23 + 3 * i])) for i in range(3)]
nfs_cold, nfs_warm = map(float, a[29:31])
tls_size = int(a[31])
tls_curl, tls_cold = map(float, a[32:34])
cpu_tls = [tuple(map(float, a[34 + 3 * i:37 + 3 * i])) for i in range(2)]
rss_mem8 = int(a[40])
mb = lambda t: size / t / 1e6
print(f"curl of data.csv              {mb(curl):8.0f} MB/s")
print(f"cold cat through the mount    {mb(cold):8.0f} MB/s   {curl/cold:5.2f} x curl (aim >= 0.90)")
print(f"under a {cap/1e6:.0f} MB/s cap: curl  {mb(curl_cap):8.0f} MB/s")
print(f"under the cap: cold cat       {mb(cold_cap):8.0f} MB/s   {curl_cap/cold_cap:5.2f} x curl (aim >= 2)")
print(f"memory path: cold cat         {mb(mem):8.0f} MB/s   {cold/mem:5.2f} x the disk path's (aim >= 0.80)")
print(f"memory path under the cap     {mb(mem_cap):8.0f} MB/s   {cold_cap/mem_cap:5.2f} x the disk path's (aim >= 0.80)")
print(f"memory path, 8 readers of 8 files: peak RSS {rss_mem8/1024:.1f} MiB (aim <= 256 + 64)")
print(f"first 4 KiB of a cold file    {head*1000:8.1f} ms     {100*head/cold:5.1f} % of its cold cat (aim < 10)")
print(f"last 4 KiB of a cold file     {tail*1000:8.1f} ms     {100*tail/cold:5.1f} % of its cold cat (aim < 10)")
print(f"warm cat through the mount    {mb(warm):8.0f} MB/s   {local/warm:5.2f} x local page-cache cat (aim >= 0.80), by {mode}")
print(f"cat of a local copy (warm)    {mb(local):8.0f} MB/s")
tmb = lambda t: tls_size / t / 1e6
print(f"over TLS ({tls_size >> 20} MiB): curl --cacert {tmb(tls_curl):6.0f} MB/s")
print(f"over TLS: cold cat            {tmb(tls_cold):8.0f} MB/s   {tls_curl/tls_cold:5.2f} x curl (aim >= 0.80)")
print(f"cold nfs-cat, NFS backend     {mb(nfs_cold):8.0f} MB/s   {cold/nfs_cold:5.2f} x the FUSE cold cat")
print(f"warm nfs-cat, NFS backend     {mb(nfs_warm):8.0f} MB/s   {warm/nfs_warm:5.2f} x the FUSE warm cat")
print(f"ls -l of {n} runs           {ls:8.2f} s      {lcurl/ls:5.2f} x curl of the same pages ({lcurl:.2f} s)")
print(f"peak RSS of the mount         {rss_read/1024:8.1f} MiB streaming, {rss_cap/1024:.1f} MiB capped, {rss_list/1024:.1f} MiB listing (aim <= 64)")
print(f"peak RSS of the emulator      {rss_emu/1024:8.1f} MiB")
gib = size / 2**30
print("CPU seconds per GiB            emulator   client   mount   (2 cores)")
for name, (emu, client, mnt) in zip(["curl", "cold cat", "cold cat, memory path"], cpu):
    print(f"  {name:28} {emu/gib:8.2f} {client/gib:8.2f} {mnt/gib:7.2f}")
tgib = tls_size / 2**30
for name, (emu, client, mnt) in zip(["curl over TLS", "cold cat over TLS"], cpu_tls):
    print(f"  {name:28} {emu/tgib:8.2f} {client/tgib:8.2f} {mnt/tgib:7.2f}")
EOF
echo "== the rsize choice through a real kernel client (scripts/bench-guest.sh)"
bash scripts/bench-guest.sh "$BIN"
