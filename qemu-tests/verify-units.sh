#!/usr/bin/env bash
# `systemd-analyze verify` every unit we ship, with systemd 262 from the Debian unstable
# chroot (scripts/mkchroot.sh): units/*, the test stubs of dracut-module/91extmerge-test-stubs
# and the guest's test units. Also checks that the dracut modules' scripts parse.
#
# The chroot is never modified: the units and the executables they name are put into a
# throwaway overlay of it (tmpfs upper, private mount namespace).
#
# Usage: qemu-tests/verify-units.sh
set -euo pipefail
LOG_TAG=verify-units
# shellcheck source=qemu-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

# Scripts: syntax only (bash -n parses both the bash and the POSIX sh ones).
for f in "$REPO"/dracut-module/*/*.sh "$QT_DIR"/*.sh "$QT_DIR"/guest/checks/*.sh "$REPO"/scripts/qemu-*.sh \
    "$QT_DIR"/guest/rootfs/usr/local/libexec/extmerge-test/* "$QT_DIR"/scenarios/*/*.sh; do
    bash -n "$f" || die "syntax error in $f"
done

"$REPO/scripts/mkchroot.sh"
CHROOT=$("$REPO/scripts/mkchroot.sh" path)

# Two sets, each verified on its own (two units share a name): what goes into the
# initrd, and the guest system's test units. verify does not evaluate conditions such as
# ConditionPathExists=/etc/initrd-release, so both are checked in the same tree.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/initrd" "$tmp/system" "$tmp/bin"
cp "$REPO"/units/*.service "$REPO"/dracut-module/91extmerge-test-stubs/*.service \
    "$REPO"/dracut-module/91extmerge-test-stubs/*.mount "$tmp/initrd/"
cp "$QT_DIR"/guest/rootfs/etc/systemd/system/*.service "$tmp/system/"
# Executables the units name (their contents do not matter to verify, only that they exist).
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/stub"
chmod 0755 "$tmp/bin/stub"

verify_set() {
    local set=$1
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m --propagation private -- /bin/bash -euc '
        chroot=$1 tmp=$2 set=$3
        mkdir -p "$tmp/ov"
        mount -t tmpfs tmpfs "$tmp/ov"
        mkdir -p "$tmp/ov/upper" "$tmp/ov/work" "$tmp/ov/root"
        mount -t overlay overlay -o "lowerdir=$chroot,upperdir=$tmp/ov/upper,workdir=$tmp/ov/work" "$tmp/ov/root"
        r=$tmp/ov/root
        mount -t proc proc "$r/proc"
        mount --rbind /sys "$r/sys"
        mount --rbind /dev "$r/dev"
        for exe in /usr/bin/extmerge /usr/libexec/extmerge-test/ignition-stub \
            /usr/libexec/extmerge-test/setup-root-stub /usr/libexec/extmerge-test/emergency-report \
            /usr/libexec/extmerge-test/rerun /usr/libexec/extmerge-test/downloader-stub \
            /usr/libexec/extmerge-test/bench-cpu \
            /usr/local/libexec/extmerge-test/run-checks /usr/local/libexec/extmerge-test/emergency-report; do
            mkdir -p "$r$(dirname "$exe")"
            cp "$tmp/bin/stub" "$r$exe"
        done
        cp "$tmp/$set"/* "$r/usr/lib/systemd/system/"
        names=$(cd "$tmp/$set" && ls | tr "\n" " ")
        chroot "$r" /bin/sh -c "cd /usr/lib/systemd/system && SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no $names"
    ' verify "$CHROOT" "$tmp" "$set" >"$tmp/$set.out" 2>&1 || {
        cat "$tmp/$set.out" >&2
        die "systemd-analyze verify failed for the $set units: $(cd "$tmp/$set" && ls | tr '\n' ' ')"
    }
    # verify exits 0 for some warnings it prints: any line naming one of our units fails.
    if grep -E "($(cd "$tmp/$set" && ls | paste -sd'|'))" "$tmp/$set.out" >&2; then
        die "systemd-analyze verify printed the lines above about our $set units"
    fi
    if [[ -s $tmp/$set.out ]]; then
        sed "s/^/  ($set, about other units) /" "$tmp/$set.out" >&2
    fi
    log "ok: systemd-analyze verify accepts the $set units: $(cd "$tmp/$set" && ls | tr '\n' ' ')"
}
verify_set initrd
verify_set system
check_nothing_mounted "$CHROOT"
log "all units pass ($(chroot "$CHROOT" systemd-analyze --version | head -n1))"
