#!/usr/bin/env bash
# The rsize/wsize choice with a figure behind it (issue 28): a 256 MiB
# data.csv read through a real kernel's NFS mount (Debian's kernel in QEMU,
# scripts/guest.sh) of `importfs serve nfs` on the host, at rsize 128 KiB
# (what importfs gives macOS) and at 1 MiB (what it gives Linux), each
# from a fresh mount (cold client cache, warm server cache), best of
# BENCH_RUNS (default 3). Under TCG absolute speeds mean little: the ratio
# and the READ calls (from the guest's /proc/self/mountstats) are the
# figures, and READ calls are what a Mac pays for too.
# Usage: scripts/bench-guest.sh [IMPORTFS_BINARY] (default: a release build).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
ensure_guest

BIN="${1:-}"
if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN="$ROOT/target/release/importfs"
fi
SIZE=$((256 << 20))
RUNS="${BENCH_RUNS:-3}"
KEY="bench-$RANDOM$RANDOM"
WORK="$(mktemp -d)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
NFS_PORT=$(free_port)
URL="http://127.0.0.1:$PORT"

cleanup() {
    [ -n "${QEMU_PID:-}" ] && kill "$QEMU_PID" 2>/dev/null || true
    [ -n "${NFS_PID:-}" ] && kill "$NFS_PID" 2>/dev/null || true
    [ -n "${EMU_PID:-}" ] && kill "$EMU_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

IMPORTIO_API_KEY="$KEY" "$BIN" emulator --listen "127.0.0.1:$PORT" --api-key "$KEY" \
    --dataset scale --extractors 1 --crawlruns 2 --result-bytes "$SIZE" >"$WORK/emu.log" 2>&1 &
EMU_PID=$!
wait_for_api "$URL" "$KEY" || true
RUN=$(finished_run "$URL" "$KEY")

IMPORTIO_API_KEY="$KEY" "$BIN" serve nfs --listen "127.0.0.1:$NFS_PORT" --api-url "$URL" \
    --allow-unprivileged-ports --cache-dir "$WORK/cache" --cache-size 4G \
    --metadata-ttl 60s >"$WORK/nfs.log" 2>&1 &
NFS_PID=$!
for _ in $(seq 100); do grep -q 'serving NFSv3' "$WORK/nfs.log" && break; sleep 0.1; done

# The guest: one warm-up read (fills the server's cache), then each rsize
# RUNS times, alternating, each on a fresh mount.
mkdir -p "$WORK/root/guest"
cat >"$WORK/root/guest/script.sh" <<EOF
set -e
mkdir -p /mnt/i
F=/mnt/i/crawlruns/$RUN/data.csv
opts="vers=3,proto=tcp,port=$NFS_PORT,mountport=$NFS_PORT,mountproto=tcp,nolock,actimeo=60,soft,timeo=600,retrans=2,addr=10.0.2.2"
# read_once RSIZE [READ_AHEAD_KB]: one cold read on a fresh mount.
read_once() {
    mount -t nfs -o "\$opts,rsize=\$1,wsize=\$1" 10.0.2.2:/importfs /mnt/i
    bdi=\$(awk '\$5 == "/mnt/i" {print \$3}' /proc/self/mountinfo)
    [ -z "\${2:-}" ] || echo "\$2" >/sys/class/bdi/\$bdi/read_ahead_kb
    ra=\$(cat /sys/class/bdi/\$bdi/read_ahead_kb)
    t0=\$(cut -d' ' -f1 /proc/uptime)
    n=\$(dd if="\$F" bs=1048576 2>/dev/null | wc -c)
    t1=\$(cut -d' ' -f1 /proc/uptime)
    reads=\$(awk '\$1 == "READ:" {print \$2; exit}' /proc/self/mountstats)
    umount /mnt/i
    echo 3 >/proc/sys/vm/drop_caches
    echo "ROW \$1 \$ra \$n \$t0 \$t1 \$reads"
}
read_once 1048576 >/dev/null
for i in \$(seq $RUNS); do read_once 131072; read_once 1048576; read_once 1048576 1024; done
EOF
eval "$(bash scripts/guest.sh prepare target/guest)"
cp "$INITRD" "$WORK/initrd"
size=$(stat -c %s "$WORK/initrd")
head -c $(( (512 - size % 512) % 512 )) /dev/zero >>"$WORK/initrd"
(cd "$WORK/root" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) >>"$WORK/initrd"
timeout 1800 qemu-system-x86_64 -machine accel=tcg -m 1024 -smp 1 -display none -monitor none \
    -no-reboot -nodefaults -serial "file:$WORK/console.txt" -serial "file:$WORK/out.txt" \
    -kernel "$KERNEL" -initrd "$WORK/initrd" -append 'console=ttyS0 panic=-1 no_timer_check quiet' \
    -nic user,model=virtio-net-pci </dev/null &
QEMU_PID=$!
wait "$QEMU_PID" || true
QEMU_PID=
if ! grep -q 'IMPORTFS-GUEST-EXIT 0' "$WORK/out.txt"; then
    echo "the guest's reads failed:" >&2
    cat "$WORK/out.txt" >&2
    tail -20 "$WORK/console.txt" >&2
    exit 1
fi
python3 - "$SIZE" "$WORK/out.txt" <<'EOF'
import sys
size = int(sys.argv[1])
best = {}
for line in open(sys.argv[2]):
    f = line.split()
    if not f or f[0] != "ROW":
        continue
    rsize, ra, n, t0, t1, reads = int(f[1]), int(f[2]), int(f[3]), float(f[4]), float(f[5]), int(f[6])
    assert n == size, f"read {n} bytes, not {size}"
    t = t1 - t0
    if (rsize, ra) not in best or t < best[(rsize, ra)][0]:
        best[(rsize, ra)] = (t, reads)
mb = lambda t: size / t / 1e6
print(f"kernel NFS client (QEMU TCG guest), {size >> 20} MiB data.csv, warm server, cold client:")
for (rsize, ra), (t, reads) in sorted(best.items()):
    print(f"  rsize {rsize >> 10:5d} KiB, read_ahead_kb {ra:5d}  {mb(t):7.1f} MB/s  {reads:6d} READ calls")
small = min(v for k, v in best.items() if k[0] == 131072)
big = min(v for k, v in best.items() if k[0] == 1048576)
print(f"  fastest 1 MiB setting: {small[0] / big[0]:.2f} x the speed of 128 KiB, "
      f"{small[1] / max(big[1], 1):.1f} x fewer READ calls")
EOF
