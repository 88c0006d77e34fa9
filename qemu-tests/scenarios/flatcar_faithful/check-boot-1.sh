#!/bin/bash
# flatcar_faithful, boot 1 (first boot): Ignition mounted the VAR disk and wrote the user's files.
. ./checklib.sh
. ./check-faithful.sh

# Stage 1 merged the default confext before Ignition wrote /etc; Ignition's var.mount went
# through it into the real /etc.
early=$(first_ts "Merged extensions into '/sysroot/etc'" -u extmerge-sysroot-early.service)
ignition=$(first_ts "Starting ignition-files.service" _PID=1)
if ts_before "$early" "$ignition"; then
    ok "stage 1 merged /sysroot/etc at ${early}s, before ignition-files.service started at ${ignition}s"
else
    not_ok "stage 1 merged /sysroot/etc (${early:-never}) before ignition-files.service (${ignition:-never})"
fi
check_eq "Ignition's var.mount is in the real /etc (the upper directory)" "What=/dev/disk/by-label/VAR" \
    "$(unshare -m sh -c 'umount -l /etc && grep ^What= /etc/systemd/system/var.mount' 2>&1)"
check_journal "the Ignition stub mounted the VAR disk at /sysroot/var" \
    "ignition-stub: mounted LABEL=VAR at /sysroot/var" -u ignition-files.service
# Stage 2 read var.mount from the root and found Ignition's mount there.
check_journal "stage 2 took /var from the root's var.mount" \
    "Using the /var that /sysroot/etc/systemd/system/var.mount:" -u extmerge-sysroot.service
check_journal "stage 2 used Ignition's /var mount as is" \
    "/sysroot/var is already a mount point (Ignition or x-initrd.mount?); using it as is" -u extmerge-sysroot.service
check_faithful
finish
