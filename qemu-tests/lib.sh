# Shared helpers for the QEMU boot tests (sourced by build-guest.sh, run-scenario.sh,
# demo.sh). Not executable on its own.
# shellcheck shell=bash

QT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$QT_DIR/.." && pwd)
# Everything the boot tests build or run lives here (EXTMERGE_QEMU_DIR overrides it).
QEMU_WORK=${EXTMERGE_QEMU_DIR:-$REPO/target/qemu}

log() { echo "${LOG_TAG:-qemu-tests}: $*" >&2; }
die() {
    echo "${LOG_TAG:-qemu-tests}: error: $*" >&2
    exit 1
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mount namespaces)"
}

need_cmds() {
    local c missing=()
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing+=("$c")
    done
    ((${#missing[@]} == 0)) || die "missing: ${missing[*]} (run scripts/install-deps.sh)"
}

# shellcheck source=scripts/debian-mirror.sh
source "$REPO/scripts/debian-mirror.sh"

# sha256 over the names and contents of files/trees (symlinks by target), stable order.
hash_paths() {
    local p
    for p in "$@"; do
        if [[ -d $p ]]; then
            (cd "$p" && find . \( -type f -o -type l \) -print0 | LC_ALL=C sort -z |
                while IFS= read -r -d '' f; do
                    if [[ -L $f ]]; then
                        printf 'L %s -> %s\n' "$f" "$(readlink "$f")"
                    else
                        printf 'F %s %s %s\n' "$f" "$(stat -c %a "$f")" "$(sha256sum <"$f" | cut -d' ' -f1)"
                    fi
                done)
        elif [[ -e $p ]]; then
            printf 'F %s %s\n' "$(basename "$p")" "$(sha256sum <"$p" | cut -d' ' -f1)"
        else
            printf 'missing %s\n' "$p"
        fi
    done | sha256sum | cut -d' ' -f1
}

# Run "$@" inside ROOT (first argument) in a private mount namespace with /proc, /sys
# and /dev mounted; everything mounted vanishes with the namespace.
chroot_run() {
    local root=$1
    shift
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m --propagation private -- /bin/sh -euc '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs tmpfs "$root/tmp"
        mount -t tmpfs tmpfs "$root/run"
        exec chroot "$root" "$@"
    ' sh "$root" "$@"
}

# Fail if anything is still mounted below DIR.
check_nothing_mounted() {
    local dir=$1
    if findmnt -rn -o TARGET | grep -qF "$dir/"; then
        die "mounts are left under $dir: $(findmnt -rn -o TARGET | grep -F "$dir/" | tr '\n' ' ')"
    fi
}
