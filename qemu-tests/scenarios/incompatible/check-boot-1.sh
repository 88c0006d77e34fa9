#!/bin/bash
# An extension for another OS is ignored with a log line naming it; the boot goes on.
. ./checklib.sh
check_journal "extmerge logged that it ignored wrong-id" \
    "Ignoring sysext 'wrong-id'" -u extmerge-sysroot.service
check "wrong-id's tool is not in /usr" test ! -e /usr/bin/wrong-id
check_merged_in_initrd /usr
check_eq "/usr/bin/hello-dir (a compatible directory sysext) runs" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_eq "/usr/bin/hello-ext4 (a compatible ext4 sysext) runs" "hello from hello-ext4" "$(/usr/bin/hello-ext4 2>&1)"
check_journal "extmerge-sysroot.service finished in the initrd" \
    "Finished extmerge-sysroot.service" _PID=1
check_eq "the boot reached multi-user.target" active "$(systemctl is-active multi-user.target)"
finish
