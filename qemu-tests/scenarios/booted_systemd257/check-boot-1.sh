#!/bin/bash
# booted_systemd257: the booted system of a systemd 257 guest (no refresh-skip logic, as on
# Flatcar Stable) with extmerge's drop-ins: after the initrd's merge nothing is remounted.
. ./checklib.sh

check "the guest runs systemd 257" sh -c 'systemctl --version | head -n1 | grep -q "^systemd 257 "'
check_merged_in_initrd /etc /usr
for u in systemd-sysext.service systemd-confext.service; do
    c=${u#systemd-}
    c=${c%.service}
    check_eq "$u runs extmerge (the drop-in is linked)" "/usr/bin/extmerge --class=$c refresh" \
        "$(systemctl cat "$u" | grep '^ExecStart=' | tail -n1 | sed 's/^ExecStart=//')"
    check_eq "$u ran at boot and succeeded" "active success" \
        "$(systemctl show -P ActiveState "$u") $(systemctl show -P Result "$u")"
    check_eq "$u's extmerge skipped at boot (exit 77): the initrd's merge is kept" 77 \
        "$(systemctl show -P ExecMainStatus "$u")"
    journalctl -b --no-pager -o cat -u "$u" | grep -E "Refreshing|Skipping|Using" | diag
done
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
