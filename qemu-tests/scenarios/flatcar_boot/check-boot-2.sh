#!/bin/bash
# Flatcar boot flow, boot 2: after an A/B update to 4001.0.0 (new /usr, staged images).
. ./checklib.sh
check_merged_in_initrd /etc /usr
check_sysroot_units_not_run
check_single_overlay /etc /usr

# The selection re-pointed the links to the images of the new version.
check_eq "flatcar-zfs.raw re-pointed to 4001.0.0" "/etc/flatcar/sysext/flatcar-zfs-4001.0.0.raw" \
    "$(readlink /etc/extensions/flatcar-zfs.raw 2>&1)"
check_eq "oem-qemu.raw re-pointed to 4001.0.0" "/oem/sysext/oem-qemu-4001.0.0.raw" \
    "$(readlink /etc/extensions/oem-qemu.raw 2>&1)"
check_eq "zfs for the new version runs" "zfs for 4001.0.0" "$(zfs-flatcar 2>&1)"
check_eq "the OEM sysext for the new version runs" "oem-qemu for 4001.0.0" "$(oem-qemu 2>&1)"
check "the previous version's zfs image is kept (the updater removes it)" \
    test -f /etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw

# The sysext pinned to 4000.0.0 is not merged, loudly.
check "the pinned sysext is not merged" test ! -e /usr/bin/pinned
check_journal "the initrd warned that 'pinned' is pinned to another OS version" \
    "Ignoring sysext 'pinned' (/etc/extensions/pinned.raw): it is pinned to another OS version" \
    "${EXTMERGE_UNITS[@]}" PRIORITY=4

# The new default confext: new defaults show, the user's edit stays.
check_eq "the new default shows where the user changed nothing" "version=2" "$(cat /etc/flatcar-default/defaults.conf 2>&1)"
check_eq "a file new in the default confext shows" "added=2" "$(cat /etc/flatcar-default/new-in-v2.conf 2>&1)"
check_eq "the user's edit from the first boot stays" "edited=yes" "$(cat /etc/flatcar-default/user-edits.conf 2>&1)"

# Nothing changed after the initrd: the booted system's refresh skipped.
check_stock_refresh_skipped systemd-sysext.service systemd-confext.service
check_no_reload
finish
