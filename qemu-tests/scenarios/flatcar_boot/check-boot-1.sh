#!/bin/bash
# Flatcar boot flow, boot 1 (first boot, Ignition ran; extmerge's units re-run in the initrd).
. ./checklib.sh

# Stage 1 merged the default confext before Ignition wrote /etc, stage 2 the rest after it.
early=$(first_ts "Merged extensions into '/sysroot/etc'" -u extmerge-sysroot-early.service)
ignition=$(first_ts "Starting ignition-files.service" _PID=1)
if ts_before "$early" "$ignition"; then
    ok "stage 1 merged /sysroot/etc at ${early}s, before ignition-files.service started at ${ignition}s"
else
    not_ok "stage 1 merged /sysroot/etc (${early:-never}) before ignition-files.service (${ignition:-never})"
fi
check_merged_in_initrd /etc /usr
check_etc_self_upper
check_sysroot_units_not_run
# Stage 2's oem-mount step started the OEM mount as Flatcar's after-Ignition unit does; this
# guest's OEM is a directory on the root, so the stub mount's condition is false (its job is
# done at once) and nothing waited for a disk.
check_journal "extmerge-sysroot.service started sysroot-oem.mount (skipped: no OEM disk here)" \
    "sysroot-oem.mount - OEM partition at /sysroot/oem (stub) skipped, unmet condition check" _PID=1
check_journal "stage 2's oem-mount step saw the start job end" \
    "The start job of sysroot-oem.mount finished: done." -u extmerge-sysroot.service
n=$(journal _PID=1 | grep -c 'dev-disk-by\\x2dlabel-OEM' || true)
check_eq "no job waited for an OEM disk" 0 "$n"

# Ignition's edit of a default file landed in the real /etc; the defaults show otherwise.
check_eq "default /etc file from 00-flatcar-default" "version=1" "$(cat /etc/flatcar-default/defaults.conf 2>&1)"
check_eq "Ignition's edit of a default file is visible" "edited=yes" "$(cat /etc/flatcar-default/user-edits.conf 2>&1)"
check_eq "Ignition's edit is in the real /etc (the upper directory)" "edited=yes" \
    "$(unshare -m sh -c 'umount -l /etc && cat /etc/flatcar-default/user-edits.conf' 2>&1)"
check "the untouched default file was not copied up into the real /etc" \
    unshare -m sh -c 'umount -l /etc && test ! -e /etc/flatcar-default/defaults.conf'
check_eq "user confext written by Ignition is merged" "from=ignition" "$(cat /etc/user-conf/site.conf 2>&1)"
check_status_lists confext 00-flatcar-default
check_status_lists confext user-conf

# Flatcar selection: enabled-sysext.conf and the OEM sysext, linked by extmerge flatcar-select.
check_eq "flatcar-zfs.raw links the image for this version" "/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw" \
    "$(readlink /etc/extensions/flatcar-zfs.raw 2>&1)"
check_eq "oem-qemu.raw links the OEM partition's image" "/oem/sysext/oem-qemu-4000.0.0.raw" \
    "$(readlink /etc/extensions/oem-qemu.raw 2>&1)"
check_eq "zfs from flatcar-zfs runs" "zfs for 4000.0.0" "$(zfs-flatcar 2>&1)"
check_eq "the OEM sysext runs" "oem-qemu for 4000.0.0" "$(oem-qemu 2>&1)"
check_eq "the pinned sysext matches this version" "pinned to 4000.0.0" "$(pinned 2>&1)"
check_journal "the selection was logged" \
    "Flatcar selection: linked /etc/extensions/flatcar-zfs.raw -> /etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw" \
    -u extmerge-sysroot.service

# The /dev/null link masks the built-in docker sysext, and is left alone.
check_eq "docker-flatcar.raw is still the /dev/null mask" "/dev/null" "$(readlink /etc/extensions/docker-flatcar.raw 2>&1)"
check "the masked docker sysext is not merged" test ! -e /usr/bin/docker-flatcar

# The corrupt sysext: one error naming it, the others merged, the boot went on.
n=$(initrd_lines "corrupt" | grep -c -i "error\|cannot\|ignor" || true)
if ((n >= 1)); then ok "the corrupt sysext was reported in the initrd: $(initrd_lines corrupt | head -n1 | cut -c1-200)"; else not_ok "no initrd line names the corrupt sysext"; fi
check_journal "extmerge-sysroot.service finished in the initrd despite the corrupt sysext" \
    "Finished extmerge-sysroot.service" _PID=1

# Re-running the units in the initrd left exactly one overlay per hierarchy.
for step in "before" "after restarting both units" "after a forced refresh"; do
    check_journal "re-run in the initrd, $step: one overlay on /sysroot/etc and on /sysroot/usr" \
        "rerun: $step: /sysroot/etc has 1 mount(s), /sysroot/usr has 1" _SYSTEMD_UNIT=extmerge-test-rerun.service
done
check_journal "the forced refresh in the initrd succeeded" "rerun: forced refresh exited with 0" \
    _SYSTEMD_UNIT=extmerge-test-rerun.service
check_single_overlay /etc /usr

# Before an update: which extensions would stop matching 4001.0.0, and what to stage.
sed 's/4000\.0\.0/4001.0.0/g' /usr/lib/os-release >/run/next-os-release
out=$(extmerge --class=sysext check --os-release=/run/next-os-release 2>&1)
rc=$?
check_eq "check --os-release exits 1 when the update would lose extensions" 1 "$rc"
for want in "sysext:pinned" "flatcar-zfs: place it at /etc/flatcar/sysext/flatcar-zfs-4001.0.0.raw" \
    "oem-qemu: place it at /oem/sysext/oem-qemu-4001.0.0.raw"; do
    if grep -qF -- "$want" <<<"$out"; then ok "check --os-release reports $want"; else
        not_ok "check --os-release reports $want: $(tr '\n' ' ' <<<"$out")"
    fi
done
# The same as an updater's hook reads it (docs/update-preflight.md): --json=short, exit 1.
json=$(extmerge --class=sysext check --os-release=/run/next-os-release --json=short 2>/dev/null)
rc=$?
check_eq "check --os-release --json=short exits 1" 1 "$rc"
# The images pinned to 4000.0.0 (zfs and OEM: the selection links their 4001.0.0 images once
# staged) and the user's pinned sysext.
check_eq "its would_stop names the sysexts pinned to 4000.0.0" \
    '"would_stop":["sysext:flatcar-zfs","sysext:oem-qemu","sysext:pinned"]' \
    "$(grep -o '"would_stop":\[[^]]*\]' <<<"$json")"
for n in flatcar-zfs oem-qemu; do
    if grep -qF "\"action\":\"missing\",\"name\":\"$n\"" <<<"$json"; then ok "its flatcar_missing names $n"; else
        not_ok "its flatcar_missing names $n: $(cut -c1-300 <<<"$json")"
    fi
done
finish
