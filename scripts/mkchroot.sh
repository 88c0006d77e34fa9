#!/usr/bin/env bash
# Build (once, cached) a minimal Debian unstable tree with the real systemd-sysext,
# systemd-dissect and systemd-repart, for the differential tests (DESIGN.md,
# "Testing layers" 3), and systemd-tests, whose TEST-50-DISSECT.sysext.sh tests/upstream/ runs
# (layer 3b).
#
# Usage:
#   scripts/mkchroot.sh            build target/chroot/unstable unless already ready
#   scripts/mkchroot.sh check      build if needed, then run systemd-sysext --version and
#                                  systemd-dissect --version inside it
#   scripts/mkchroot.sh run CMD..  build if needed, then run CMD inside the chroot, in a
#                                  private mount namespace with /proc, /sys and /dev
#                                  mounted (all of it vanishes when CMD exits)
#   scripts/mkchroot.sh path       print the chroot's path
#
# The mirror is the one this machine's apt already uses (the first non-security
# `URIs:` of /etc/apt/sources.list.d/debian.sources); EXTMERGE_MIRROR overrides it.
# The tree is built in a temporary directory and renamed into place only when
# complete; the stamp file .extmerge-ready holds a hash of the recipe, so a changed
# package list rebuilds and an unchanged one returns at once.
set -euo pipefail

SUITE=unstable
VARIANT=minbase
PACKAGES=(
    systemd            # systemd-sysext, systemd-confext
    systemd-container  # systemd-dissect
    systemd-repart
    systemd-tests      # upstream's test/units (tests/upstream/: TEST-50-DISSECT.sysext.sh)
    jq                 # used by TEST-50-DISSECT.sysext.sh
    erofs-utils
    squashfs-tools
    cryptsetup-bin
    openssl
    dracut
    e2fsprogs
    util-linux
    kmod
)
RECIPE_VERSION=1 # bump to force a rebuild when the steps below change

die() { echo "mkchroot: error: $*" >&2; exit 1; }
log() { echo "mkchroot: $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/debian-mirror.sh
source "$REPO/scripts/debian-mirror.sh"
BASE="$REPO/target/chroot"
DEST="$BASE/$SUITE"
STAMP="$DEST/.extmerge-ready"

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mount namespaces)"

pkglist=$(IFS=,; echo "${PACKAGES[*]}")
recipe_hash=$(printf '%s\n' "v$RECIPE_VERSION" "$SUITE" "$VARIANT" "$pkglist" | sha256sum | cut -d' ' -f1)

is_ready() { [[ -f $STAMP && $(head -n1 "$STAMP") == "$recipe_hash" ]]; }


build() {
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap missing: run scripts/install-deps.sh"
    command -v unshare >/dev/null 2>&1 || die "unshare missing: run scripts/install-deps.sh"
    local uri start tmp dlog old
    uri=$(debian_mirror)
    start=$(date +%s)
    mkdir -p "$BASE"
    # One build at a time; a concurrent run waits, then finds the tree ready.
    exec 9>"$BASE/.lock"
    flock 9
    if is_ready; then
        exec 9>&-
        return 0
    fi
    # Leftovers of an interrupted build (never marked ready) go away first.
    rm -rf --one-file-system "$BASE"/.build-"$SUITE".* "$BASE"/.old-"$SUITE".*
    tmp=$(mktemp -d "$BASE/.build-$SUITE.XXXXXX")
    dlog="$BASE/debootstrap-$SUITE.log"
    # shellcheck disable=SC2064
    trap "rm -rf --one-file-system '$tmp'" EXIT
    log "building Debian $SUITE ($VARIANT) with: ${PACKAGES[*]} (log: $dlog; takes a few minutes)"
    # A private mount namespace: whatever debootstrap mounts inside the tree (proc,
    # sys, ...) disappears with it, even if it is interrupted.
    if ! unshare -m --propagation private \
        debootstrap --variant="$VARIANT" --include="$pkglist" --merged-usr \
        "$SUITE" "$tmp" "$uri" >"$dlog" 2>&1; then
        tail -n 30 "$dlog" >&2
        die "debootstrap failed (full log: $dlog)"
    fi
    # Downloaded .debs are not needed any more.
    rm -f "$tmp"/var/cache/apt/archives/*.deb
    local ver
    # shellcheck disable=SC2016
    ver=$(chroot "$tmp" dpkg-query -W -f='${Version}' systemd) || die "systemd is not installed in the new tree"
    {
        echo "$recipe_hash"
        echo "suite=$SUITE variant=$VARIANT built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "packages=$pkglist"
        echo "systemd=$ver"
    } >"$tmp/.extmerge-ready"
    # Swap into place: rename is atomic, the old tree (if any) is removed afterwards.
    if [[ -e $DEST ]]; then
        old="$BASE/.old-$SUITE.$$"
        mv "$DEST" "$old"
    fi
    mv "$tmp" "$DEST"
    trap - EXIT
    [[ -n ${old:-} ]] && rm -rf --one-file-system "$old"
    log "ready: $DEST (systemd $ver, $(du -sh --one-file-system "$DEST" | cut -f1)) in $(($(date +%s) - start)) s"
}

ensure() { is_ready || build; }

# Run a command inside the chroot in a private mount namespace with /proc, /sys, /dev.
run_in() {
    [[ $# -gt 0 ]] || die "run: no command given"
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m --propagation private -- /bin/sh -euc '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        exec chroot "$root" "$@"
    ' sh "$DEST" "$@"
}

check_nothing_mounted() {
    if findmnt -rn -o TARGET | grep -qF "$DEST/"; then
        die "mounts are left under $DEST: $(findmnt -rn -o TARGET | grep -F "$DEST/" | tr '\n' ' ')"
    fi
}

cmd=${1:-build}
case $cmd in
    build)
        ensure
        ;;
    check)
        ensure
        echo "systemd package: $(sed -n 's/^systemd=//p' "$STAMP")"
        run_in systemd-sysext --version | head -n1
        run_in systemd-dissect --version | head -n1
        run_in systemd-repart --version | head -n1
        check_nothing_mounted
        echo "chroot: $DEST ($(du -sh --one-file-system "$DEST" | cut -f1)); nothing left mounted"
        ;;
    run)
        shift
        ensure
        run_in "$@"
        ;;
    path)
        echo "$DEST"
        ;;
    *)
        die "unknown command '$cmd' (use: build | check | run CMD... | path)"
        ;;
esac
