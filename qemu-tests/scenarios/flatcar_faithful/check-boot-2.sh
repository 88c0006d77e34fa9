#!/bin/bash
# flatcar_faithful, boot 2: no Ignition; stage 2 mounts /var from the var.mount Ignition wrote.
. ./checklib.sh
. ./check-faithful.sh

check_journal "stage 2 took /var from the root's var.mount" \
    "Using the /var that /sysroot/etc/systemd/system/var.mount:" -u extmerge-sysroot.service
check_journal "stage 2 mounted it at /sysroot/var" \
    "at /sysroot/var for /sysroot/etc/systemd/system/var.mount:" -u extmerge-sysroot.service
check_eq "/var has var.mount's options (noatime)" "noatime" \
    "$(findmnt -n -o OPTIONS --mountpoint /var | tr ',' '\n' | grep -x noatime)"
n=$(journal -u ignition-files.service | grep -c "ignition-stub:" || true)
check_eq "Ignition did not run in boot 2" 0 "$n"
check_faithful
finish
