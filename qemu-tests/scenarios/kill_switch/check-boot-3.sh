#!/bin/bash
# kill_switch, boot 3: a masked systemd-sysext.service in the root disables the initrd
# sysext merge too (Flatcar's convention); the confext is still merged.
. ./checklib.sh
check_journal "stage 2 logged the mask" "systemd-sysext.service is masked in /sysroot: not merging sysexts." \
    -u extmerge-sysroot.service
check "no sysext merge in the initrd" sh -c "! journalctl -b --no-pager -u extmerge-sysroot.service -u extmerge-sysroot-early.service | grep -qF \"Merged extensions into '/sysroot/usr'\""
check_merged_in_initrd /etc
check_eq "systemd-sysext.service is masked in the booted system" "masked" "$(systemctl is-enabled systemd-sysext.service 2>&1)"
check "no sysext is merged" test ! -e /usr/bin/hello-dir
check "the confext is merged" grep -q '^greeting=hello from demo-conf$' /etc/demo-conf/greeting.conf
finish
