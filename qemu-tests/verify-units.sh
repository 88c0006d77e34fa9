#!/usr/bin/env bash
# `systemd-analyze verify` every unit we ship, with systemd 262 from the Debian unstable
# chroot (scripts/mkchroot.sh): units/*, the test stubs of dracut-module/91extmerge-test-stubs,
# the guest's test units, and systemd's own booted-system units with units/booted's drop-ins
# linked in. Also checks that the dracut modules' scripts parse.
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
            /usr/libexec/extmerge-test/bench-cpu /usr/libexec/extmerge-test/mountids \
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

# The booted system's drop-ins (units/booted, opt-in): linked into /etc/systemd/system/UNIT.d/
# as the README says, over systemd's own units of the chroot. verify must accept the units with
# them, and `systemctl cat` must show extmerge as what each one runs.
verify_booted() {
    local units="systemd-sysext.service systemd-confext.service systemd-sysext@0.service systemd-sysupdate-notify-sysext@0.service"
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m --propagation private -- /bin/bash -euc '
        chroot=$1 tmp=$2 booted=$3 units=$4
        mkdir -p "$tmp/ovb"
        mount -t tmpfs tmpfs "$tmp/ovb"
        mkdir -p "$tmp/ovb/upper" "$tmp/ovb/work" "$tmp/ovb/root"
        mount -t overlay overlay -o "lowerdir=$chroot,upperdir=$tmp/ovb/upper,workdir=$tmp/ovb/work" "$tmp/ovb/root"
        r=$tmp/ovb/root
        mount -t proc proc "$r/proc"
        mount --rbind /sys "$r/sys"
        mount --rbind /dev "$r/dev"
        mkdir -p "$r/usr/bin" "$r/usr/lib/extmerge"
        cp "$tmp/bin/stub" "$r/usr/bin/extmerge"
        cp -r "$booted" "$r/usr/lib/extmerge/booted"
        for d in "$r"/usr/lib/extmerge/booted/*.d; do
            u=$(basename "$d")
            mkdir -p "$r/etc/systemd/system/$u"
            ln -s "/usr/lib/extmerge/booted/$u/50-extmerge.conf" "$r/etc/systemd/system/$u/50-extmerge.conf"
        done
        chroot "$r" /bin/sh -c "SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no $units" >&2
        # The assignments in force: the last ExecStart= and ExecStop= of systemctl cat (a drop-in
        # comes after the unit it changes).
        for u in $units; do
            cat=$(chroot "$r" systemctl cat "$u")
            echo "$u start=$(grep "^ExecStart=" <<<"$cat" | tail -n1) stop=$(grep "^ExecStop=" <<<"$cat" | tail -n1)"
        done
    ' verify "$CHROOT" "$tmp" "$REPO/units/booted" "$units" >"$tmp/booted.out" 2>"$tmp/booted.err" || {
        cat "$tmp/booted.err" "$tmp/booted.out" >&2
        die "systemd-analyze verify failed for the booted system's units with extmerge's drop-ins"
    }
    if grep -E "(extmerge|50-extmerge)" "$tmp/booted.err" >&2; then
        die "systemd-analyze verify printed the lines above about the booted drop-ins"
    fi
    local want
    want=$(printf '%s\n' \
        "systemd-sysext.service start=ExecStart=/usr/bin/extmerge --class=sysext refresh stop=ExecStop=" \
        "systemd-confext.service start=ExecStart=/usr/bin/extmerge --class=confext refresh stop=ExecStop=" \
        "systemd-sysext@0.service start=ExecStart=-/usr/bin/extmerge --class=sysext stop=" \
        "systemd-sysupdate-notify-sysext@0.service start=ExecStart=-/usr/bin/extmerge --class=sysext stop=")
    if [[ $(<"$tmp/booted.out") != "$want" ]]; then
        diff <(echo "$want") "$tmp/booted.out" >&2 || true
        die "with the drop-ins linked, the units do not run extmerge as above (want < > got)"
    fi
    log "ok: systemd-analyze verify accepts $units with extmerge's drop-ins, and each runs /usr/bin/extmerge"
}
verify_booted
check_nothing_mounted "$CHROOT"
log "all units pass ($(chroot "$CHROOT" systemd-analyze --version | head -n1))"
