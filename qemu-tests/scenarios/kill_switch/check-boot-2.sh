#!/bin/bash
# kill_switch, boot 2: rd.extmerge=0 turns off every extmerge step in the initrd.
. ./checklib.sh
for u in extmerge-sysroot-early.service extmerge-sysroot.service; do
    check_journal "$u logged the kill switch" "Disabled by the kernel command line option rd.extmerge=0" \
        -u "$u"
done
check "nothing merged in the initrd" sh -c "! journalctl -b --no-pager -u extmerge-sysroot.service -u extmerge-sysroot-early.service | grep -qF 'Merged extensions into'"
check_sysroot_units_not_run
check_eq "the booted system's units merged the sysexts" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check "the booted system's units merged the confext" grep -q '^greeting=hello from demo-conf$' /etc/demo-conf/greeting.conf
finish
