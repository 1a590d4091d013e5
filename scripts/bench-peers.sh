#!/usr/bin/env bash
# importfs against its peers, side by side in one run, on the same bytes from
# the same server, so that anyone can check how it compares:
#   - curl of the file from nginx (the network-side ceiling: 1.00x)
#   - cat of a local copy in the page cache (what a warm read should approach)
#   - a download then a read, `curl -o FILE URL && cat FILE` (FILE on the
#     disk of the mounts' caches): what a user does without a mount
#   - importfs, httpfs2, rclone mount with --vfs-cache-mode off, and rclone
#     mount with --vfs-cache-mode full: each cold (a fresh mount, an empty
#     cache, the file's size already known from one stat) and warm (a second
#     cat right after, on the same mount: for importfs its "first re-read")
# One nginx on 127.0.0.1 (sendfile on) serves every reader the same file. For
# importfs it also serves a static copy of the API's answers: the emulator is
# started once, importfs is mounted on it and reads the file, the request log
# (GET /_emulator/requests) says which API paths it asked for, and the
# emulator's answers for exactly those paths are saved as files. The emulator
# is then stopped, so no timed read goes through it: all readers get their
# bytes from nginx's page cache alike. Every reader's bytes are checked with
# cmp against the file nginx serves (a cold and a warm read each).
# Prints the min and median of BENCH_RUNS runs (default 5) of each reader,
# in seconds and MB/s (10^6 bytes), with ratios to curl (by median), and
# importfs' ratio to each peer (median against median), cold and warm, and
# importfs cold against download-then-cat, with the CPU seconds per GiB of
# each side (the mount's process and its reader; curl and cat).
# Only loopback is used; everything started is stopped by its PID on exit.
# Installing nginx on a machine whose init starts services also starts the
# distribution's own nginx (port 80): this script neither uses nor stops it.
# Usage: scripts/bench-peers.sh [SIZE_BYTES] (default 536870912, 512 MiB);
# BENCH_PROFILE=profiling for a build perf can symbolise; BENCH_BASELINE=PATH
# adds another importfs binary (say, a build of the previous commit) as one
# more reader, alternating with this build in every round: on a VM whose
# figures drift 5-7% between runs, that is the fair way to tell two builds
# apart.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
# nginx is in /usr/sbin, which a normal user's PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"
ensure_rust
ensure_system
ensure_pkg nginx nginx
ensure_pkg httpfs2 httpfs2
ensure_pkg rclone rclone

SIZE="${1:-536870912}"
RUNS="${BENCH_RUNS:-5}"
KEY="bench-$RANDOM$RANDOM"
# BENCH_PROFILE=profiling: the same code with symbols kept, to run perf on
# the mount while it is measured (the release build is stripped).
PROFILE="${BENCH_PROFILE:-release}"
cargo build --profile "$PROFILE" --quiet
BIN="$(target_dir)/$PROFILE/importfs"
BASELINE="${BENCH_BASELINE:-}"
[ -z "$BASELINE" ] || [ -x "$BASELINE" ] || { echo "bench-peers: BENCH_BASELINE=$BASELINE is not an executable" >&2; exit 1; }
WORK="$(mktemp -d)"
WWW="$WORK/www"
mkdir -p "$WWW" "$WORK/nginx-tmp" "$WORK/mnt-emulator" "$WORK/mnt-importfs" \
    "$WORK/mnt-httpfs2" "$WORK/mnt-rclone"
: >"$WORK/rclone.conf"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The mount being measured (one at a time), its process and its file.
CUR_PID=; CUR_MNT=; FILE=
cleanup() {
    local m p
    for m in "$WORK"/mnt-*; do
        fusermount3 -u "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true
    done
    for p in "$CUR_PID" "${EMU_PID:-}" "${NGINX_PID:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() { echo "bench-peers: $*" >&2; exit 1; }
now() { date +%s.%N; }
timeit() {
    local t0 t1
    t0=$(now); "$@" >/dev/null || fail "failed: $*"; t1=$(now)
    python3 -c "print($t1-$t0)"
}

# timecpu CMD...: "WALL CPU" of CMD, CPU being its own and its children's
# user + system seconds.
timecpu() {
    python3 -c 'import os, subprocess, sys, time
t = time.time()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
c = os.times()
print(time.time() - t, c.children_user + c.children_system)' "$@" || fail "failed: $*"
}

# cpu_of PID: the user + system seconds process PID has used so far.
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

unmount_cur() {
    if [ -n "$CUR_MNT" ]; then
        fusermount3 -u "$CUR_MNT" 2>/dev/null || fusermount3 -uz "$CUR_MNT" 2>/dev/null || true
    fi
    if [ -n "$CUR_PID" ]; then
        kill "$CUR_PID" 2>/dev/null || true
        wait "$CUR_PID" 2>/dev/null || true
    fi
    CUR_PID=; CUR_MNT=
}

# wait_mount NAME: until the current mount is up, then stat its file once.
wait_mount() {
    for _ in $(seq 200); do mountpoint -q "$CUR_MNT" && break; sleep 0.1; done
    mountpoint -q "$CUR_MNT" || { cat "$WORK/$1.log" >&2; fail "$1 did not mount"; }
    stat "$FILE" >/dev/null || { cat "$WORK/$1.log" >&2; fail "$1: no $FILE"; }
}

# mount_importfs API_URL MNT [BINARY]: importfs with an empty cache.
mount_importfs() {
    rm -rf "$WORK/cache-importfs"
    CUR_MNT="$2"; FILE="$2/crawlruns/$RUN/data.csv"
    IMPORTIO_API_KEY="$KEY" "${3:-$BIN}" mount --foreground "$CUR_MNT" --api-url "$1" \
        --cache-dir "$WORK/cache-importfs" --cache-size 4G --metadata-ttl 60s \
        >"$WORK/importfs.log" 2>&1 &
    CUR_PID=$!
    wait_mount importfs
}

# mount_fresh READER: a fresh mount of READER (nothing cached), FILE set.
mount_fresh() {
    unmount_cur
    case "$1" in
    importfs) mount_importfs "$NGINX_URL" "$WORK/mnt-importfs"; return ;;
    baseline) mount_importfs "$NGINX_URL" "$WORK/mnt-importfs" "$BASELINE"; return ;;
    httpfs2)
        CUR_MNT="$WORK/mnt-httpfs2"; FILE="$CUR_MNT/csv"
        httpfs2 -f "$FILE_URL" "$CUR_MNT" >"$WORK/httpfs2.log" 2>&1 &
        ;;
    rclone-off | rclone-full)
        rm -rf "$WORK/cache-rclone"
        CUR_MNT="$WORK/mnt-rclone"; FILE="$CUR_MNT/csv"
        rclone mount :http: "$CUR_MNT" --config "$WORK/rclone.conf" --read-only \
            --http-url "$NGINX_URL/crawlruns/$RUN/" --vfs-cache-mode "${1#rclone-}" \
            --cache-dir "$WORK/cache-rclone" >"$WORK/$1.log" 2>&1 &
        ;;
    esac
    CUR_PID=$!
    wait_mount "$1"
}

# 1. What importfs asks of the API, from the emulator's request log.
EMU_URL="http://127.0.0.1:$(free_port)"
"$BIN" emulator --listen "${EMU_URL#http://}" --api-key "$KEY" --dataset scale \
    --extractors 1 --crawlruns 3 --result-bytes "$SIZE" >"$WORK/emulator.log" 2>&1 &
EMU_PID=$!
wait_for_api "$EMU_URL" "$KEY" || true
curl -sf -o /dev/null "$EMU_URL/users/current?_apikey=$KEY" \
    || { cat "$WORK/emulator.log" >&2; fail "the emulator did not start"; }
RUN=$(finished_run "$EMU_URL" "$KEY")
curl -sf -X DELETE "$EMU_URL/_emulator/requests" >/dev/null
mount_importfs "$EMU_URL" "$WORK/mnt-emulator"
ls -l "$FILE" >/dev/null
cat "$FILE" >/dev/null
unmount_cur
# Every path asked (the query, _apikey, _page and _perpage, is not part of it).
PATHS=$(curl -sf "$EMU_URL/_emulator/requests" | python3 -c '
import json,sys
print("\n".join(sorted({r["path"] for r in json.load(sys.stdin)})))')

# 2. The static tree: an answer at PATH is the file PATH.json, a list at
# PATH/ is PATH/index.json, and the result file is itself, at
# /crawlruns/RUN/csv (nginx serves each whatever the query string).
SAVED=
for p in $PATHS; do
    case "$p" in
    "/crawlruns/$RUN/csv") continue ;;
    "/crawlruns/$RUN/"*) echo "not served: $p (another result file of the run)" >&2; continue ;;
    */) f="$WWW${p}index.json"; q="&_perpage=1000" ;;
    *) f="$WWW$p.json"; q= ;;
    esac
    mkdir -p "$(dirname "$f")"
    curl -sf -o "$f" "$EMU_URL$p?_apikey=$KEY$q" || fail "the emulator did not answer $p"
    SAVED="$SAVED $p"
done
LOCAL="$WWW/crawlruns/$RUN/csv"
mkdir -p "$(dirname "$LOCAL")"
curl -sf -o "$LOCAL" "$EMU_URL/crawlruns/$RUN/csv?_apikey=$KEY"
[ "$(stat -c %s "$LOCAL")" = "$SIZE" ] || fail "the result file is not $SIZE bytes"
kill "$EMU_PID"; wait "$EMU_PID" 2>/dev/null || true; EMU_PID=
echo "static API tree:$SAVED /crawlruns/$RUN/csv" >&2

# 3. nginx, as this user, with everything of its own under $WORK. The lists
# (a path ending in /) are index.json, or an autoindex (rclone lists the run's
# directory). httpfs2 insists on Accept-Ranges in a 206, which nginx sends
# only in a 200: it is added to answers of requests that carry a Range.
NGINX_URL="http://127.0.0.1:$(free_port)"
{
    [ "$(id -u)" = 0 ] && echo "user $(id -un) $(id -gn);"
    cat <<EOF
worker_processes 2;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 256; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $WORK/nginx-tmp/body;
    proxy_temp_path $WORK/nginx-tmp/proxy;
    fastcgi_temp_path $WORK/nginx-tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx-tmp/uwsgi;
    scgi_temp_path $WORK/nginx-tmp/scgi;
    types { application/json json; }
    default_type application/octet-stream;
    map \$http_range \$range_asked { "" ""; default bytes; }
    server {
        listen ${NGINX_URL#http://};
        root $WWW;
        location / { try_files \$uri.json \$uri =404; }
        location ~ /\$ { index index.json; autoindex on; }
        location ~ /csv\$ { default_type text/csv; add_header Accept-Ranges \$range_asked; }
    }
}
EOF
} >"$WORK/nginx.conf"
nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/nginx-error.log" -g 'daemon off;' &
NGINX_PID=$!
FILE_URL="$NGINX_URL/crawlruns/$RUN/csv"
for _ in $(seq 100); do curl -sfI -o /dev/null "$FILE_URL" && break; sleep 0.1; done
curl -sfI -o /dev/null "$FILE_URL" || { cat "$WORK/nginx-error.log" >&2; fail "nginx did not start"; }
curl -sfI "$FILE_URL" | grep -qi "^content-length: $SIZE" || fail "nginx: no Content-Length in HEAD"
[ "$(curl -sf -r 0-9 -o /dev/null -w '%{http_code}' "$FILE_URL")" = 206 ] || fail "nginx: no 206 to a Range"
for p in $SAVED; do
    [ "$(curl -sf -o /dev/null -w '%{content_type}' "$NGINX_URL$p?_apikey=$KEY&_page=1&_perpage=30")" \
        = application/json ] || fail "nginx: $p is not served as JSON"
done
# importfs works against the static tree (or the bench stops here).
mount_fresh importfs
cmp -s "$FILE" "$LOCAL" || { cat "$WORK/importfs.log" >&2; fail "importfs cannot read the file from nginx"; }
unmount_cur

# 4. The timed runs, in rounds (each round one run of every reader) so that
# drift of the machine falls on all of them alike.
READERS="importfs ${BASELINE:+baseline }httpfs2 rclone-off rclone-full"
echo "importfs peer bench: $SIZE bytes from nginx at $NGINX_URL, $RUNS runs each" >&2
cat "$LOCAL" >/dev/null
PT=0
for i in $(seq "$RUNS"); do
    echo "round $i of $RUNS" >&2
    sync
    timeit curl -sf -o /dev/null "$FILE_URL" >>"$WORK/t.curl"
    timeit cat "$LOCAL" >>"$WORK/t.local"
    rm -f "$WORK/dl"; sync
    timecpu sh -c 'curl -sf -o "$1" "$2" && cat "$1"' sh "$WORK/dl" "$FILE_URL" >"$WORK/tc"
    cut -d' ' -f1 "$WORK/tc" >>"$WORK/t.download"; cut -d' ' -f2 "$WORK/tc" >>"$WORK/c.download"
    rm -f "$WORK/dl"
    for r in $READERS; do
        mount_fresh "$r"
        sync
        if [ "$r" = importfs ] || [ "$r" = baseline ]; then
            c0=$(cpu_of "$CUR_PID")
            timecpu cat "$FILE" >"$WORK/tc"
            c1=$(cpu_of "$CUR_PID")
            cut -d' ' -f1 "$WORK/tc" >>"$WORK/t.$r.cold"
            python3 -c "print($c1 - $c0 + $(cut -d' ' -f2 "$WORK/tc"))" >>"$WORK/c.$r.cold"
        else
            timeit cat "$FILE" >>"$WORK/t.$r.cold"
        fi
        timeit cat "$FILE" >>"$WORK/t.$r.warm"
        if [ "$r" = importfs ]; then
            PT=$(awk '$1 == "passthrough_opens" {print $2}' "$CUR_MNT/.importfs/stats" || true)
        fi
        unmount_cur
    done
done

# 5. Every reader's bytes, a cold and a warm read, against the file nginx serves.
cmp -s <(curl -sf "$FILE_URL") "$LOCAL" || fail "curl's bytes differ from the file"
for r in $READERS; do
    mount_fresh "$r"
    cmp -s "$FILE" "$LOCAL" || fail "$r: a cold read differs from the file"
    cmp -s "$FILE" "$LOCAL" || fail "$r: a warm read differs from the file"
    unmount_cur
done
echo "bytes: curl and every mount, cold and warm, are identical to the file (cmp)" >&2

python3 - "$WORK" "$SIZE" "$RUNS" "${PT:-0}" "$BASELINE" <<'EOF'
import statistics, sys
work, size, runs, pt = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
baseline = sys.argv[5]
def times(name):
    with open(f"{work}/t.{name}") as f:
        t = [float(x) for x in f if x.strip()]
    return min(t), statistics.median(t)
rows = [("curl (the ceiling)", "curl"), ("cat, local page cache", "local"),
        ("curl -o FILE && cat FILE", "download")]
names = {"importfs": "importfs", **({"baseline": "baseline importfs"} if baseline else {}),
         "httpfs2": "httpfs2",
         "rclone-off": "rclone, vfs off", "rclone-full": "rclone, vfs full"}
for r, label in names.items():
    rows.append((f"{label} cold", f"{r}.cold"))
    rows.append((f"{label} warm" + (" (first re-read)" if r == "importfs" else ""), f"{r}.warm"))
t = {key: times(key) for _, key in rows}
mb = lambda s: size / s / 1e6
curl_med = t["curl"][1]
print(f"{size} bytes from nginx on 127.0.0.1, {runs} runs each; MB/s are 10^6 bytes/s;")
print("x curl is curl's median time over the reader's (above 1: faster than curl)")
print(f"{'reader':34} {'min s':>7} {'median s':>8} {'MB/s min':>9} {'MB/s med':>9} {'x curl':>7}")
for label, key in rows:
    lo, med = t[key]
    print(f"{label:34} {lo:7.3f} {med:8.3f} {mb(lo):9.0f} {mb(med):9.0f} {curl_med / med:7.2f}")
print()
print("importfs against each peer: the peer's median time over importfs' (above 1: importfs faster)")
print(f"{'peer':34} {'cold':>7} {'warm':>7}")
for r in ("httpfs2", "rclone-off", "rclone-full"):
    cold = t[f"{r}.cold"][1] / t["importfs.cold"][1]
    warm = t[f"{r}.warm"][1] / t["importfs.warm"][1]
    print(f"{names[r]:34} {cold:7.2f} {warm:7.2f}")
print()
def cpu_per_gib(name):
    with open(f"{work}/c.{name}") as f:
        return statistics.median(float(x) for x in f if x.strip()) / (size / 2**30)
dl, cold = t["download"][1], t["importfs.cold"][1]
print("importfs cold against a download then a read (curl -o FILE && cat FILE):")
print(f"  {dl / cold:.2f}x (download-then-cat's median time over importfs cold's; aim >= 1.30)")
if baseline:
    print(f"  baseline ({baseline}): {dl / t['baseline.cold'][1]:.2f}x, "
          f"CPU s/GiB {cpu_per_gib('baseline.cold'):.2f}; this build's cold is "
          f"{t['baseline.cold'][1] / cold:.3f}x as fast as the baseline's")
print(f"  CPU s/GiB, median: importfs (mount + cat) {cpu_per_gib('importfs.cold'):.2f}, "
      f"curl + cat {cpu_per_gib('download'):.2f}")
print()
w, local = t["importfs.warm"][1], t["local"][1]
how = "FUSE passthrough" if pt > 0 else "read() with the page cache kept"
print(f"importfs first re-read (the warm cat right after the cold cat, by {how}):")
print(f"  {mb(w):.0f} MB/s median, {local / w:.2f}x cat of the local copy in the page cache (aim >= 0.90)")
EOF
