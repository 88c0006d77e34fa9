#!/bin/bash
# booted_systemd257: the booted system of a systemd 257 guest (no refresh-skip logic, as on
# Flatcar Stable) with extmerge's drop-ins: after the initrd's merge nothing is remounted.
. ./checklib.sh

check "the guest runs systemd 257" sh -c 'systemctl --version | head -n1 | grep -q "^systemd 257 "'
check_merged_in_initrd /etc /usr
check_booted_units_skipped
check_single_overlay /usr /etc
check_no_reload
check_eq "hello-erofs (merged in the initrd) runs" "hello from hello-erofs" "$(/usr/bin/hello-erofs 2>&1)"
check_status_lists sysext hello-erofs
check_status_lists confext demo-conf

# What the unit would have done without the drop-in: systemd 257's refresh has no skip logic
# and replaces the merge (a new mount on /usr) although nothing changed.
before=$(mount_id /usr)
out=$(systemd-sysext refresh --no-reload 2>&1)
rc=$?
echo "$out" | diag
check_eq "systemd 257's own refresh succeeds" 0 "$rc"
check "systemd 257's own refresh remounted /usr although nothing changed (mount ID $before -> $(mount_id /usr))" \
    test "$before" != "$(mount_id /usr)"
finish
