#!/usr/bin/env bash
# The kernel-client harness's guest (tests/common/qemu.rs): Debian's cloud
# kernel, unpacked (never installed), and a busybox initramfs that loads the
# NFS client and virtio-net modules, brings the network up (QEMU's user
# network: the host's loopback is 10.0.2.2) and runs /guest/script.sh, its
# output on the second serial port between markers, then powers off.
#
#   bash scripts/guest.sh prepare CACHE_DIR
#       fetch and unpack the kernel (once), build the base initramfs (once
#       per kernel and change of this script); print KERNEL=... and INITRD=...
#
# What changes per run (the script, the importfs binary) is a second,
# uncompressed cpio archive that tests/common/qemu.rs appends to INITRD (the
# kernel unpacks archives one after another).
#
# Needs apt-get (Debian/Ubuntu), busybox-static and qemu-system-x86
# (scripts/lib.sh ensure_guest installs them).
set -euo pipefail

# The guest's modules, each loaded after what modules.dep says it needs.
MODULES="virtio_pci virtio_net nfsv3"
BUSYBOX=/bin/busybox

die() { echo "guest.sh: $*" >&2; exit 1; }

# The real package behind the metapackage, e.g. linux-image-6.1.0-57-cloud-amd64.
kernel_package() {
    local pkg
    pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
        awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}')
    if [ -z "$pkg" ]; then
        apt-get update -qq >&2 || true
        pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
            awk '/Depends: linux-image-[0-9].*-cloud-amd64/ {print $2; exit}')
    fi
    [ -n "$pkg" ] || die "apt knows no linux-image-cloud-amd64 (is this Debian?)"
    echo "$pkg"
}

# Unpack PACKAGE under CACHE/PACKAGE (apt-get download + dpkg -x), once;
# make its modules.dep (the package leaves that to depmod at install).
unpack_kernel() {
    local cache="$1" pkg="$2" dir="$1/$2"
    if [ -e "$dir/.done" ]; then return 0; fi
    rm -rf "$dir" "$cache/dl"
    mkdir -p "$cache/dl"
    chmod 777 "$cache/dl" # apt's _apt user writes there when it can
    (cd "$cache/dl" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
    dpkg -x "$cache/dl/"*.deb "$dir"
    rm -rf "$cache/dl"
    local rel
    rel=$(ls "$dir/lib/modules")
    "$BUSYBOX" depmod -b "$dir" "$rel"
    touch "$dir/.done"
}

# Module files (relative to the modules dir) of $MODULES and everything they
# need, each after what it needs.
module_order() {
    local mdir="$1" seen=" " out=()
    visit() {
        local path="$1" dep
        case "$seen" in *" $path "*) return ;; esac
        seen="$seen$path "
        for dep in $(awk -v m="$path:" '$1 == m {for (i = 2; i <= NF; i++) print $i}' "$mdir/modules.dep"); do
            visit "$dep"
        done
        out+=("$path")
    }
    local m path
    for m in $MODULES; do
        path=$(awk -F: -v m="/$m.ko" 'index($1, m) && substr($1, length($1) - length(m) + 1) == m {print $1; exit}' "$mdir/modules.dep")
        [ -n "$path" ] || die "no module $m in $mdir/modules.dep"
        visit "$path"
    done
    printf '%s\n' "${out[@]}"
}

write_init() {
    cat >"$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin HOME=/root
mkdir -p /proc /sys /dev /tmp /run /root /mnt /etc
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
ln -sf /proc/self/mounts /etc/mtab
while read -r m; do insmod "/modules/$m" || echo "GUEST: insmod $m failed" >/dev/ttyS0; done </modules/order
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
out=/dev/ttyS1
echo "IMPORTFS-GUEST-BEGIN $(cut -d' ' -f1 /proc/uptime)" >$out
sh /guest/script.sh >$out 2>&1 </dev/null
echo "IMPORTFS-GUEST-EXIT $? $(cut -d' ' -f1 /proc/uptime)" >$out
sync
poweroff -f
EOF
    chmod +x "$1"
}

# The base initramfs: busybox, the modules in load order, /init, /etc.
build_initramfs() {
    local kdir="$1" out="$2" rel mdir root
    rel=$(ls "$kdir/lib/modules")
    mdir="$kdir/lib/modules/$rel"
    root=$(mktemp -d)
    mkdir -p "$root/bin" "$root/modules" "$root/etc" "$root/guest"
    cp "$BUSYBOX" "$root/bin/busybox"
    local m
    module_order "$mdir" | while read -r m; do
        cp "$mdir/$m" "$root/modules/$(basename "$m")"
        basename "$m" >>"$root/modules/order"
    done
    write_init "$root/init"
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
    printf 'root:x:0:\n' >"$root/etc/group"
    printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
    (cd "$root" && find . | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) >"$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$root"
}

prepare() {
    local cache="$1"
    [ -x "$BUSYBOX" ] || die "$BUSYBOX is missing (apt-get install busybox-static)"
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        die "$BUSYBOX is not static (apt-get install busybox-static)"
    fi
    mkdir -p "$cache"
    cache=$(cd "$cache" && pwd)
    exec 9>"$cache/.lock"
    flock 9
    local pkg kdir stamp
    pkg=$(kernel_package)
    kdir="$cache/$pkg"
    unpack_kernel "$cache" "$pkg"
    # Rebuilt when this script changes.
    stamp=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)
    local initrd="$cache/initramfs-$pkg-$stamp.cpio.gz"
    if [ ! -e "$initrd" ]; then
        rm -f "$cache"/initramfs-*.cpio.gz
        build_initramfs "$kdir" "$initrd"
    fi
    echo "KERNEL=$(ls "$kdir"/boot/vmlinuz-*)"
    echo "INITRD=$initrd"
}

case "${1:-}" in
    prepare) prepare "${2:?usage: guest.sh prepare CACHE_DIR}" ;;
    *) die "usage: guest.sh prepare CACHE_DIR" ;;
esac
