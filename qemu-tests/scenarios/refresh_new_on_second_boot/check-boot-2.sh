#!/bin/bash
# refresh_new_on_second_boot, boot 2: the initrd merged the new sysext; the booted system
# found nothing to do.
. ./checklib.sh
check_merged_in_initrd /etc /usr /opt
check_journal "the initrd used the new sysext" \
    "Using sysext 'hello-squashfs' (/var/lib/extensions/hello-squashfs.raw" -u extmerge-sysroot.service
check_eq "/usr/bin/hello-squashfs (added before boot 2) runs" "hello from hello-squashfs" "$(/usr/bin/hello-squashfs 2>&1)"
check "/opt/hello-squashfs/data.txt from the new sysext" test -f /opt/hello-squashfs/data.txt
check_eq "/usr/bin/hello-dir still runs" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_stock_refresh_skipped systemd-sysext.service systemd-confext.service
check_no_reload
check_status_lists sysext hello-squashfs
rc=0
extmerge refresh >/dev/null 2>&1 || rc=$?
check_eq "extmerge refresh in the booted system exits 77 (nothing changed)" 77 "$rc"
finish
