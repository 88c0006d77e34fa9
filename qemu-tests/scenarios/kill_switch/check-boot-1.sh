#!/bin/bash
# kill_switch, boot 1: rd.systemd.sysext=0 turns off the initrd sysext merge only.
. ./checklib.sh
check_journal "stage 2 logged the kill switch" \
    "Disabled by the kernel command line option rd.systemd.sysext=0: not touching sysexts." \
    -u extmerge-sysroot.service
check "no sysext merge in the initrd" sh -c "! journalctl -b --no-pager -u extmerge-sysroot.service -u extmerge-sysroot-early.service | grep -qF \"Merged extensions into '/sysroot/usr'\""
check_merged_in_initrd /etc
check_sysroot_units_not_run
# rd. options are for the initrd only: the booted system's systemd-sysext.service merged.
check_eq "systemd-sysext.service merged in the booted system" "active success" \
    "$(systemctl show -P ActiveState systemd-sysext.service) $(systemctl show -P Result systemd-sysext.service)"
check_eq "the sysext is merged after boot" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_stock_refresh_skipped systemd-confext.service
finish
