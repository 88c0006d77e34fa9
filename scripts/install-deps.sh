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
    xfsprogs         # mkfs.xfs: test images
    attr             # getfattr/setfattr: xattr checks in tests
    util-linux       # unshare, mount, losetup
    fdisk            # sfdisk: the GPT seed of the gpt_ddi fuzz target
    debootstrap      # scripts/mkchroot.sh
    file             # `make static` checks the binary is statically linked
    jq
    strace           # tests/initrd_cli.rs: an initrd stage creates no process
    python3          # bench/: image builder, benchmark driver and report
    ca-certificates
    cryptsetup-bin   # veritysetup: verity fixtures in tests/verity_parsers.rs
    libcryptsetup-dev  # feature `verity` (dynamic); pulls libjson-c-dev, uuid-dev, libssl-dev (.a files)
    libclang-dev     # bindgen in libcryptsetup-rs-sys
    clang
    dpkg-dev         # dpkg-source: scripts/build-cryptsetup.sh unpacks Debian source packages
    autoconf         # scripts/build-cryptsetup.sh: autoreconf of cryptsetup's git tarball
    automake
    autopoint
    libtool
    nettle-dev       # libnettle.a: crypto backend of the static libcryptsetup
)

# QEMU for the boot tests (qemu-tests/): from bookworm-backports on Debian 12 (see the
# step below), from the default suite elsewhere.
QEMU_PKGS=(
    qemu-system-x86  # qemu-system-x86_64 -accel tcg
    qemu-utils       # qemu-img: copy-on-write overlays
)

log() { echo "install-deps: $*" >&2; }
die() { echo "install-deps: error: $*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "not root and sudo is missing: run as root"
    SUDO=(sudo -n)
fi

# apt-get update, then install "$@" (apt-get options may come first); output only on failure.
apt_install() {
    local aptlog
    aptlog=$(mktemp)
    if ! "${SUDO[@]}" apt-get update -q >"$aptlog" 2>&1; then
        cat "$aptlog" >&2
        rm -f "$aptlog"
        die "apt-get update failed"
    fi
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends "$@" >"$aptlog" 2>&1; then
        cat "$aptlog" >&2
        rm -f "$aptlog"
        die "apt-get install failed for: $*"
    fi
    rm -f "$aptlog"
}

# ---- apt packages --------------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || missing+=("$p")
done

if ((${#missing[@]})); then
    log "installing apt packages: ${missing[*]}"
    apt_install "${missing[@]}"
fi

# ---- QEMU (bookworm-backports on Debian 12) -------------------------------------
# The backports suite is added from the URIs: line this machine's apt already uses and
# pinned at priority 100, so it never upgrades anything by itself; only the packages
# installed below with -t come from it.
qemu_missing=()
for p in "${QEMU_PKGS[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ $status == "install ok installed" ]] || qemu_missing+=("$p")
done
if ((${#qemu_missing[@]})); then
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    target=()
    if [[ $codename == bookworm ]]; then
        bpo_src=/etc/apt/sources.list.d/extmerge-bookworm-backports.sources
        bpo_pin=/etc/apt/preferences.d/extmerge-bookworm-backports
        if [[ ! -f $bpo_src ]]; then
            # shellcheck source=scripts/debian-mirror.sh
            source "$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh"
            uri=$(debian_mirror)
            log "adding bookworm-backports (pinned at 100) from this machine's Debian mirror"
            printf '%s\n' "Types: deb" "URIs: $uri" "Suites: bookworm-backports" "Components: main" \
                "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
                "${SUDO[@]}" tee "$bpo_src" >/dev/null
            printf '%s\n' "Package: *" "Pin: release n=bookworm-backports" "Pin-Priority: 100" |
                "${SUDO[@]}" tee "$bpo_pin" >/dev/null
        fi
        target=(-t bookworm-backports)
    fi
    log "installing QEMU: ${qemu_missing[*]} ${target[*]}"
    apt_install "${target[@]}" "${QEMU_PKGS[@]}"
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
