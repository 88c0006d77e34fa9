#!/bin/bash
# upstream_verity: upstream's TEST-50-DISSECT.sysext.sh cases that need device-mapper (the chroot
# layer, tests/upstream/sysext.sh, skips them: the host has none), in the booted guest.
#   1. upstream/ (copied from the chroot's systemd-tests by run-scenario.sh) is the version of
#      the guest's systemd;
#   2. the cases "Check if verity user certs get loaded from --root=" (a signed erofs DDI made by
#      systemd-repart, its certificate in the root's /etc/verity.d, merged under
#      --image-policy=root=signed+absent:usr=signed+absent) and "Check that refresh does a skip
#      if verity image changes file handle but has same hash" (a copy of the same DDI under the
#      same name: refresh must keep the mount), each made into a script of its own (the
#      prologue, run_sysext_tests' header, that one case, and the call on / or on
#      "$FAKE_ROOTS_DIR", which runs it with --root=), and the top-level case (mount points carried
#      over into and back from the overlay; install_extension_images' app0.raw is a squashfs
#      with a verity sidecar and a root hash signature by /usr/share/mkosi.key, which upstream's
#      mkosi image ships and this check makes);
#   3. each script runs twice: with the guest's systemd-sysext, then with extmerge as
#      systemd-sysext (a symlink in a directory put first in PATH).
# A run passes when its script exits 0 having reached its last line (a marker on fd 9: a case
# that exits 0 early ran nothing and is not a pass). Every run must pass, and each case must
# pass with extmerge whenever it passes with systemd. extmerge's own log must also show the
# verity it used: the DDI signed by the (fake) root's certificate, both refreshes of the
# same-hash copy skipped, app0.raw with its .roothash sidecar.
. ./checklib.sh
. ./upstreamlib.sh

upstream_setup

# install_extension_images signs with upstream's mkosi test key; a throwaway one stands in.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=extmerge-test-mkosi \
    -keyout /usr/share/mkosi.key -out /usr/share/mkosi.crt 2>&1 | diag
# The top-level case links its image into /var/lib/extensions, which upstream's image has.
mkdir -p /var/lib/extensions

# The cases on / want /var/lib/extensions.mutable/ empty (prepare_root stops on "Leftovers
# remained"); the guest has Flatcar's mutable-/etc link there (the initrd-setup-root stub).
# It is moved aside while the cases run: they merge /opt and /usr only.
ASIDE=/var/lib/extmerge-test-mutable-aside
mkdir -p "$ASIDE"
before=$(ls -A /var/lib/extensions.mutable 2>/dev/null)
for f in /var/lib/extensions.mutable/* /var/lib/extensions.mutable/.[!.]*; do
    if [[ -e $f || -L $f ]]; then mv "$f" "$ASIDE/"; fi
done

# compare NAME: the case passed with extmerge if it passed with systemd.
compare() {
    if [[ ${PASSED[$1.systemd]} == 1 && ${PASSED[$1.extmerge]} != 1 ]]; then
        not_ok "$1 passes with extmerge as it does with systemd: it fails with extmerge only"
    else
        ok "$1 passes with extmerge as it does with systemd (systemd: ${PASSED[$1.systemd]}, extmerge: ${PASSED[$1.extmerge]})"
    fi
}

declare -A PASSED
declare -A DESC=(
    [verity-user-cert-from-root]="Check if verity user certs get loaded from --root="
    [refresh-skip-verity-filehandle-same-hash]="Check that refresh does a skip if verity image changes file handle but has same hash"
)
for base in verity-user-cert-from-root refresh-skip-verity-filehandle-same-hash; do
    for variant in slash root; do
        name=$base@${variant/slash//}
        script=$WORK/units/extmerge-$base-$variant.sh
        if ! err=$(sysext_block "${DESC[$base]}" "$script" "$variant" 2>&1); then
            not_ok "sysext.sh has exactly one case \"${DESC[$base]}\": $err"
            continue
        fi
        for tool in systemd extmerge; do
            PASSED[$name.$tool]=0
            run_block "$name" "$tool" "$script" && PASSED[$name.$tool]=1
        done
        compare "$name"
    done
done

name=mountpoints-carried-over@/
script=$WORK/units/extmerge-mountpoints.sh
if err=$(toplevel_block "$script" 2>&1); then
    ok "sysext.sh has its top-level case (mount points carried over)"
    for tool in systemd extmerge; do
        # The case makes /tmp/foo with mkdir and leaves it; a failed run may leave more.
        rm -rf /tmp/foo
        rm -f /var/lib/extensions/app0.raw
        PASSED[$name.$tool]=0
        run_block "$name" "$tool" "$script" && PASSED[$name.$tool]=1
        if mountpoint -q /usr/share; then
            echo "$name with $tool left a mount on /usr/share: unmounting it" | diag
            umount -l /usr/share
        fi
    done
    compare "$name"
else
    not_ok "sysext.sh has its top-level case (mount points carried over): $err"
fi
# What extmerge itself said it did (its log; systemd's own binary logs none of this). The
# certificate is named relative to the root: with --root= it came from that root's verity.d.
H='[0-9a-f]{64}'
for variant in / root; do
    check_eq "extmerge used verity-user-cert-from-root@$variant's DDI as signed by the root's /etc/verity.d/test-ext.crt" 1 \
        "$(count_info "$(log_of "verity-user-cert-from-root@$variant" extmerge)" \
            "Using sysext 'test-extension' \(.*/test-extension\.raw, erofs, signed root hash $H by /etc/verity\.d/test-ext\.crt\)\.")"
    check_eq "extmerge skipped both refreshes of refresh-skip-verity-filehandle-same-hash@$variant" 2 \
        "$(count_info "$(log_of "refresh-skip-verity-filehandle-same-hash@$variant" extmerge)" \
            "Skipping extension refresh because no change was found, use --always-refresh=yes to always do a refresh\.")"
done
# app0.raw's signature is by the stand-in mkosi key, which no verity.d trusts: verity only, as
# systemd falls back to.
check_eq "extmerge used app0.raw with dm-verity (its .roothash sidecar, untrusted signature)" 1 \
    "$(count_info "$(log_of "mountpoints-carried-over@/" extmerge)" \
        "Using sysext 'app0' \(.*, squashfs, verity root hash $(cat /tmp/app0.roothash 2>&1)\)\.")"
rm -f /usr/share/mkosi.key /usr/share/mkosi.crt
for f in "$ASIDE"/* "$ASIDE"/.[!.]*; do
    if [[ -e $f || -L $f ]]; then mv "$f" /var/lib/extensions.mutable/; fi
done
rmdir "$ASIDE"
check_eq "/var/lib/extensions.mutable has its entries back" "$before" \
    "$(ls -A /var/lib/extensions.mutable 2>/dev/null)"
check_eq "nothing is left merged on /usr" "" "$(findmnt -n -o FSTYPE --mountpoint /usr)"
finish
