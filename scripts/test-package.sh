#!/usr/bin/env bash
# The packages of scripts/package.sh, installed for real:
#   - the .deb: lintian (no error; warnings listed), then `apt-get install
#     ./importfs_*.deb` into a throwaway Debian root (debootstrap
#     --variant=minbase, with /dev, /proc and /sys bound in) and in it:
#     `importfs --version`, `man -w importfs`, bash-completion loading the
#     completion, the systemd unit, the README's /etc/fstab line mounting the
#     emulator through `mount` (mount.fuse3 running the installed binary);
#     then `apt-get remove` leaves none of the package's files, and after a
#     purge the root's file list is as it was before the install.
#   - the static binary: `file` says statically linked, it prints its version,
#     and it serves the emulator from a chroot holding nothing but itself and
#     /dev/null, answering a curl from outside.
# Root only (chroot, mount). Builds with scripts/package.sh unless PKG_DIR
# names a folder it filled already. DEBIAN_MIRROR and DEBIAN_SUITE choose the
# root's Debian (default: deb.debian.org, this machine's release or bookworm);
# the bootstrapped root is kept as a tarball in target/pkg-test/ for next time.
# PACKAGE_TEST_PARTS picks some of "lintian static deb" (default: all three).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

if [ "$(id -u)" != 0 ]; then
    [ "${CI:-}" = true ] && fail "the package test needs root (chroot, mount)"
    echo "== package test SKIPPED: needs root (chroot, mount)"; exit 0
fi
ensure_rust
ensure_system
ensure_pkg lintian lintian
ensure_pkg debootstrap debootstrap
ensure_pkg file file

if [ -z "${PKG_DIR:-}" ]; then
    bash scripts/package.sh "$ROOT/target/package"
    PKG_DIR="$ROOT/target/package"
fi
DEB="$(ls "$PKG_DIR"/importfs_*_amd64.deb)"
VERSION="$(dpkg-deb -f "$DEB" Version)"
VERSION="${VERSION%-*}"
# What --version must say: a release build from a git checkout names its commit.
EXPECT="importfs $VERSION"
if commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" &&
    [ "$(git -C "$ROOT" rev-parse --show-toplevel)" = "$ROOT" ]; then
    EXPECT="$EXPECT (git $commit)"
fi

WORK="$(mktemp -d /var/tmp/importfs-pkg.XXXXXX)"
R="$WORK/root"    # the Debian root
S="$WORK/static"  # the static binary's chroot
PIDS=()

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Processes running a binary under $WORK (the mount, its watcher): ours.
our_pids() {
    local p exe
    for p in /proc/[0-9]*; do
        exe="$(readlink "$p/exe" 2>/dev/null)" || continue
        case "$exe" in "$WORK"/*) echo "${p#/proc/}" ;; esac
    done
}

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    umount "$R/mnt/importio" 2>/dev/null || umount -l "$R/mnt/importio" 2>/dev/null
    for pid in $(our_pids); do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
    for m in proc sys dev/pts dev; do
        mountpoint -q "$R/$m" 2>/dev/null && { umount "$R/$m" || umount -l "$R/$m"; }
    done
    if findmnt -rn -o TARGET | grep -q "^$WORK/"; then
        echo "left $WORK in place: something is still mounted under it" >&2
    else
        rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT

# Wait up to $1 seconds for the command after it to succeed.
wait_for() {
    local secs="$1"; shift
    for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# lintian: no error; the warnings are listed.
test_lintian() {
    step "lintian $(basename "$DEB")"
    lintian --tag-display-limit 0 "$DEB" >"$WORK/lintian.txt" 2>&1 || true
    cat "$WORK/lintian.txt"
    grep -q '^E: ' "$WORK/lintian.txt" && fail "lintian reports errors (above)"
    echo "lintian: $(grep -c '^E: ' "$WORK/lintian.txt") errors, $(grep -c '^W: ' "$WORK/lintian.txt") warnings"
}

# The static binary, alone in a chroot.
test_static() {
    STATIC="$(ls "$PKG_DIR"/importfs-*-x86_64-unknown-linux-musl)"
    step "static binary $(basename "$STATIC")"
    file "$STATIC"
    file "$STATIC" | grep -Eq 'statically linked|static-pie linked' || fail "not a static binary"
    [ "$("$STATIC" --version)" = "$EXPECT" ] || fail "--version: $("$STATIC" --version), not $EXPECT"
    mkdir -p "$S/dev" "$S/tmp"
    cp "$STATIC" "$S/importfs"
    mknod -m 666 "$S/dev/null" c 1 3
    echo "chroot contents: $(cd "$S" && find . -mindepth 1 | sort | tr '\n' ' ')"
    [ "$(chroot "$S" /importfs --version)" = "$EXPECT" ] || fail "--version in the chroot"
    PORT="$(free_port)"
    KEY="pkg-$RANDOM$RANDOM"
    chroot "$S" /importfs emulator --listen "127.0.0.1:$PORT" --api-key "$KEY" --dataset demo \
        >"$WORK/static-emu.log" 2>&1 &
    PIDS+=($!)
    URL="http://127.0.0.1:$PORT"
    wait_for 30 curl -sf "$URL/extractors/?_apikey=$KEY" || { cat "$WORK/static-emu.log"; fail "the static emulator does not answer"; }
    curl -sf "$URL/extractors/?_apikey=$KEY" | grep -q "Hacker News Front Page" ||
        fail "the static emulator's answer lacks the demo account"
    echo "the static binary serves the emulator from a chroot with nothing else in it"
    kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; unset 'PIDS[-1]'
}

# The throwaway Debian root, /dev, /proc and /sys bound in.
make_root() {
    step "a minbase Debian root"
    SUITE="${DEBIAN_SUITE:-}"
    if [ -z "$SUITE" ]; then
        SUITE="$( . /etc/os-release; [ "${ID:-}" = debian ] && echo "${VERSION_CODENAME:-}")"
        SUITE="${SUITE:-bookworm}"
    fi
    MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    # What the root has before the package: its dependencies and what the checks use.
    INCLUDE="fuse3,nfs-common,man-db,bash-completion"
    CACHE="$(target_dir)/pkg-test/$SUITE-minbase-${INCLUDE//,/-}.tar"
    mkdir -p "$R"
    if [ -f "$CACHE" ]; then
        tar -xpf "$CACHE" -C "$R"
    else
        if ! debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$R" "$MIRROR" \
                >"$WORK/debootstrap.log" 2>&1; then
            tail -20 "$WORK/debootstrap.log"
            [ "${CI:-}" = true ] && fail "debootstrap $SUITE from $MIRROR failed"
            echo "== package install test SKIPPED: debootstrap $SUITE from $MIRROR failed (above)"
            exit 0
        fi
        mkdir -p "$(dirname "$CACHE")"
        tar -cpf "$CACHE.part" -C "$R" . && mv "$CACHE.part" "$CACHE"
    fi
    mount --bind /dev "$R/dev"
    mount --bind /dev/pts "$R/dev/pts"
    mount -t proc proc "$R/proc"
    mount -t sysfs sysfs "$R/sys"
    in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

    # Every path of the root but the kernel's, temporary and package-manager state.
    snapshot() {
        (cd "$R" && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev -o -path ./tmp \
            -o -path ./run -o -path ./var/cache -o -path ./var/lib/dpkg -o -path ./var/lib/apt \
            -o -path ./var/log \) -prune -o -print | sort)
    }
    snapshot >"$WORK/before"
}

# apt-get install of the .deb: it adds its own files and nothing else.
deb_install() {
    step "apt-get install ./$(basename "$DEB")"
    cp "$DEB" "$R/tmp/"
    in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "/tmp/$(basename "$DEB")" \
        >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "apt-get install"; }
    tail -3 "$WORK/install.log"
    in_root dpkg -L importfs | sort >"$WORK/owned"
    snapshot >"$WORK/installed"
    # What the install added is the package's files and nothing else.
    comm -13 "$WORK/before" "$WORK/installed" | sed 's#^\.##' >"$WORK/added"
    extra="$(comm -23 "$WORK/added" "$WORK/owned")"
    [ -z "$extra" ] || fail "the install added files the package does not own: $extra"
    echo "installed $(wc -l <"$WORK/added") new paths, all the package's:"
    sed 's/^/    /' "$WORK/added"
}

# What the installed package gives: version, man pages, completions, the unit.
deb_checks() {
    step "importfs --version"
    in_root importfs --version
    [ "$(in_root importfs --version)" = "$EXPECT" ] || fail "--version: $(in_root importfs --version), not $EXPECT"
    file "$R/usr/bin/importfs" | grep -q ', stripped' || fail "/usr/bin/importfs is not stripped"

    step "man -w"
    for page in importfs importfs-mount importfs-completions; do
        in_root man -w "$page" || fail "man -w $page finds no page"
    done
    in_root sh -c 'man importfs 2>&1 >/dev/null' | grep . && fail "man importfs warns (above)"

    step "bash completion"
    # bash-completion loads /usr/share/bash-completion/completions/importfs on
    # the first Tab; this does what that Tab does, then completes `importfs mo`.
    in_root bash -c '
        source /usr/share/bash-completion/bash_completion
        _completion_loader importfs
        fn=$(complete -p importfs | sed -n "s/.* -F \([^ ]*\) .*/\1/p")
        COMP_WORDS=(importfs mo); COMP_CWORD=1; COMP_LINE="importfs mo"; COMP_POINT=${#COMP_LINE}
        "$fn" importfs mo importfs
        printf "%s\n" "${COMPREPLY[@]}"' >"$WORK/completion" || fail "bash completion"
    grep -qx 'mount' "$WORK/completion" || fail "'importfs mo<Tab>' does not give mount: $(cat "$WORK/completion")"
    echo "importfs mo<Tab>: $(tr '\n' ' ' <"$WORK/completion")"
    [ -s "$R/usr/share/zsh/vendor-completions/_importfs" ] || fail "no zsh completion"
    [ -s "$R/usr/share/fish/vendor_completions.d/importfs.fish" ] || fail "no fish completion"

    step "systemd unit"
    UNIT="$R/usr/lib/systemd/system/importfs@.service"
    [ -f "$UNIT" ] || fail "no $UNIT"
    exec_start="$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT")"
    echo "ExecStart runs $exec_start"
    [ -x "$R$exec_start" ] || fail "the unit's ExecStart ($exec_start) is not the installed binary"
}

# The README's fstab line mounts the emulator with the installed binary.
deb_fstab() {
    step "the README's /etc/fstab line"
    FSTAB="$(grep -E '^none +/mnt/importio +fuse\.importfs ' README.md | head -1)"
    [ -n "$FSTAB" ] || fail "no fstab line in the README"
    PORT="$(free_port)"
    KEY="pkg-$RANDOM$RANDOM"
    # Not through in_root: $! must be the emulator's own pid (chroot and env exec).
    chroot "$R" env -i PATH=/usr/bin:/bin HOME=/root importfs emulator \
        --listen "127.0.0.1:$PORT" --api-key "$KEY" --dataset demo >"$WORK/emu.log" 2>&1 &
    PIDS+=($!)
    wait_for 30 curl -sf "http://127.0.0.1:$PORT/extractors/?_apikey=$KEY" ||
        { cat "$WORK/emu.log"; fail "the emulator does not answer"; }
    (umask 077; echo "$KEY" >"$R/etc/importfs.key")
    mkdir -p "$R/mnt/importio"
    cp "$R/etc/fstab" "$WORK/fstab.orig"
    # The README's line, pointed at the emulator; cache and log in /tmp.
    line="$(echo "$FSTAB" | awk -v extra=",api_url=http://127.0.0.1:$PORT,cache_dir=/tmp/importfs-cache,log_file=/tmp/importfs.log" '{ $4 = $4 extra; print }')"
    echo "$line" >>"$R/etc/fstab"
    echo "fstab: $line"
    in_root mount /mnt/importio || { cat "$R/tmp/importfs.log" 2>/dev/null; fail "mount /mnt/importio"; }
    fstype="$(findmnt -n -o FSTYPE "$R/mnt/importio")"
    [ "$fstype" = fuse.importfs ] || fail "/mnt/importio is $fstype, not fuse.importfs"
    in_root ls /mnt/importio/extractors | grep -qx "Hacker News Front Page" || fail "no demo extractor in the mount"
    in_root cat "/mnt/importio/extractors/Hacker News Front Page/latest/state" | grep -qx FINISHED ||
        fail "cannot read a run's state through the mount"
    echo "mounted as $fstype; the demo account is there"
    in_root umount /mnt/importio || fail "umount /mnt/importio"
    # The mount's process and its watcher end with the unmount.
    EMU="${PIDS[-1]}"
    mount_gone() { local p; for p in $(our_pids); do [ "$p" = "$EMU" ] || return 1; done; }
    wait_for 20 mount_gone || fail "processes of the mount still run after umount: $(our_pids | tr '\n' ' ')"
    kill "$EMU"; wait "$EMU" 2>/dev/null || true; unset 'PIDS[-1]'
    # The test's own files go; what is left is the package's.
    cp "$WORK/fstab.orig" "$R/etc/fstab"
    rm -f "$R/etc/importfs.key"
    rmdir "$R/mnt/importio"
}

# apt-get remove, then purge: the root is as it was before the install.
deb_remove() {
    step "apt-get remove importfs, dpkg --purge"
    in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y importfs >"$WORK/remove.log" 2>&1 ||
        { cat "$WORK/remove.log"; fail "apt-get remove"; }
    left=""
    while read -r path; do
        [ -e "$R$path" ] && [ ! -d "$R$path" ] && left="$left $path"
    done <"$WORK/owned"
    [ -z "$left" ] || fail "apt-get remove left:$left"
    # It has no conffiles, so remove leaves nothing to purge: dpkg --purge
    # says so (apt-get purge knows no package that came from a file).
    in_root dpkg --purge importfs >>"$WORK/remove.log" 2>&1 || { cat "$WORK/remove.log"; fail "dpkg --purge"; }
    in_root dpkg -s importfs >/dev/null 2>&1 && fail "dpkg still knows importfs after the purge"
    snapshot >"$WORK/after"
    if ! diff "$WORK/before" "$WORK/after" >"$WORK/diff"; then
        cat "$WORK/diff"
        fail "the root after the purge differs from before the install (above)"
    fi
    echo "removed: no file of the package is left; the root's $(wc -l <"$WORK/before") paths are as before"
}

for part in ${PACKAGE_TEST_PARTS:-lintian static deb}; do
    case "$part" in
        lintian) test_lintian ;;
        static) test_static ;;
        deb) make_root; deb_install; deb_checks; deb_fstab; deb_remove ;;
        *) fail "unknown part $part (lintian, static, deb)" ;;
    esac
done
echo "== package test passed (${PACKAGE_TEST_PARTS:-lintian static deb})"
