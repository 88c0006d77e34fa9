#!/usr/bin/env bash
# Install everything extmerge's build, tests and tooling need on a fresh Debian 12
# machine. Idempotent and silent when everything is already present; runs
# `apt-get update` only when something has to be installed.
#
# Usage: scripts/install-deps.sh
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

APT_PKGS=(
    build-essential  # cc/c++ for libfuzzer-sys, libc.a for the static build
    pkg-config
    squashfs-tools   # mksquashfs / unsquashfs: test images
    erofs-utils      # mkfs.erofs: test images
    e2fsprogs        # mkfs.ext4 -d: test images
    btrfs-progs
    attr             # getfattr/setfattr: xattr checks in tests
    util-linux       # unshare, mount, losetup
    debootstrap      # scripts/mkchroot.sh
    file             # `make static` checks the binary is statically linked
    jq
    ca-certificates
)

log() { echo "install-deps: $*" >&2; }
die() { echo "install-deps: error: $*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run as root"
    SUDO=(sudo -n)
fi

# ---- apt packages --------------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
    log "installing apt packages: ${missing[*]}"
    aptlog=$(mktemp)
    trap 'rm -f "$aptlog"' EXIT
    if ! "${SUDO[@]}" apt-get update -q >"$aptlog" 2>&1; then
        cat "$aptlog" >&2
        die "apt-get update failed"
    fi
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "${missing[@]}" >"$aptlog" 2>&1; then
        cat "$aptlog" >&2
        die "apt-get install failed for: ${missing[*]}"
    fi
fi

# ---- Rust toolchain and cargo tools ------------------------------------------
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo >/dev/null 2>&1 || die "cargo not found: a Rust toolchain (rustup, stable) is required"

# rustfmt and clippy come with the rustup toolchain; add them if a minimal profile lacks them.
for comp in rustfmt clippy; do
    sub=${comp/rustfmt/fmt}
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 || die "cargo $sub missing and rustup not available to add $comp"
        log "adding rustup component $comp"
        rustup component add "$comp" >/dev/null 2>&1 || die "rustup component add $comp failed"
    fi
done

cargo_install() { # crate binary
    local crate=$1 bin=$2 clog
    command -v "$bin" >/dev/null 2>&1 && return 0
    log "installing $crate (cargo install --locked; takes a few minutes)"
    clog=$(mktemp)
    if ! cargo install --locked "$crate" >"$clog" 2>&1; then
        tail -n 40 "$clog" >&2
        rm -f "$clog"
        die "cargo install --locked $crate failed"
    fi
    rm -f "$clog"
}
cargo_install cargo-nextest cargo-nextest
cargo_install cargo-fuzz cargo-fuzz
