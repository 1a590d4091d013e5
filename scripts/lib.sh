# Shared helpers of the scripts: install what is missing on a fresh
# Debian/Ubuntu machine. Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        echo "need root to run: $*" >&2; return 1; fi
}

apt_updated=0
# ensure_pkg COMMAND PACKAGE: install PACKAGE when COMMAND is missing.
ensure_pkg() {
    local cmd="$1" pkg="$2"
    command -v "$cmd" >/dev/null 2>&1 && return 0
    echo "installing $pkg (for $cmd)" >&2
    if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null
}

# ensure_deb PACKAGE: install PACKAGE (without its recommends) when dpkg
# does not have it.
ensure_deb() {
    dpkg -s "$1" >/dev/null 2>&1 && return 0
    echo "installing $1" >&2
    if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null
}

# The kernel-client harness (tests/kernel_nfs.rs): QEMU, a static busybox,
# and Debian's cloud kernel unpacked into target/guest (never installed).
ensure_guest() {
    ensure_deb qemu-system-x86
    ensure_deb busybox-static
    bash "$ROOT/scripts/guest.sh" prepare "$ROOT/target/guest" >/dev/null
}

ensure_system() {
    ensure_pkg fusermount3 fuse3
    ensure_pkg rsync rsync
    ensure_pkg curl curl
    ensure_pkg openssl openssl
    ensure_pkg sha256sum coreutils
    ensure_pkg vim vim
    ensure_pkg python3 python3
    ensure_pkg promtool prometheus   # tests/metrics.rs: promtool check metrics
    ensure_pkg nfs-ls libnfs-utils   # tests/nfs.rs: real NFS clients (nfs-ls, nfs-cat, nfs-cp)
    ensure_pkg tinyproxy tinyproxy   # tests/https.rs: a real CONNECT proxy
    ensure_pkg gnome-keyring-daemon gnome-keyring   # tests/login.rs: the real Secret Service
    ensure_pkg secret-tool libsecret-tools          # tests/login.rs: a client that checks what login stored
    ensure_pkg dbus-run-session dbus-daemon         # tests/login.rs: a private session bus
    if [ ! -e /dev/fuse ]; then
        as_root modprobe fuse 2>/dev/null || true
    fi
}

# The project's Python venv, made if missing (python3-venv installed if need be).
ensure_venv_only() {
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        fi
    fi
}

# The venv with what the conformance and file checks need.
ensure_venv() {
    ensure_venv_only
    if ! "$VENV/bin/python" -c 'import schemathesis, openpyxl' 2>/dev/null; then
        "$VENV/bin/pip" install -q --disable-pip-version-check schemathesis openpyxl
    fi
    export IMPORTFS_PYTHON="$VENV/bin/python"
}

ensure_rust() {
    if ! command -v cargo >/dev/null; then
        echo "cargo is missing: install Rust from rustup.rs first" >&2
        return 1
    fi
}

# What scripts/package.sh needs: cargo-deb, musl-gcc and Rust's musl target.
ensure_package_tools() {
    ensure_pkg musl-gcc musl-tools
    if ! cargo deb --version >/dev/null 2>&1; then
        echo "installing cargo-deb (cargo install --locked cargo-deb)" >&2
        nice -n 10 cargo install --locked --quiet cargo-deb
    fi
    if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        rustup target add x86_64-unknown-linux-musl
    fi
}

# Cargo's target directory (CARGO_TARGET_DIR, a config file, or ./target).
target_dir() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# wait_for_api URL KEY [CURL_ARGS...]: until an emulator (or API) at URL
# answers GET /users/current with KEY, for at most 10 s.
wait_for_api() {
    local url=$1 key=$2; shift 2
    for _ in $(seq 100); do
        curl -sf "$@" "$url/users/current?_apikey=$key" >/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# finished_run URL KEY [CURL_ARGS...]: the guid of a FINISHED crawl run of
# the account at URL.
finished_run() {
    local url=$1 key=$2; shift 2
    curl -sf "$@" "$url/crawlruns/?_apikey=$key&_perpage=50" | python3 -c '
import json, sys
print(next(r["guid"] for r in json.load(sys.stdin) if r.get("state") == "FINISHED"))'
}
