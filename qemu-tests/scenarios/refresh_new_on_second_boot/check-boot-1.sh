#!/bin/bash
# refresh_new_on_second_boot, boot 1: only hello-dir is merged; then a new sysext image is
# placed in /var/lib/extensions for the next boot.
. ./checklib.sh
check_merged_in_initrd /etc /usr
check_eq "/usr/bin/hello-dir runs" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check "hello-squashfs is not merged yet" test ! -e /usr/bin/hello-squashfs
check_stock_refresh_skipped systemd-sysext.service systemd-confext.service
check_no_reload
check "copied hello-squashfs.raw into /var/lib/extensions for boot 2" sh -c \
    'mkdir -p /var/lib/extensions && cp /var/lib/extmerge-test-pending/hello-squashfs.raw /var/lib/extensions/.hello-squashfs.raw.tmp &&
     mv /var/lib/extensions/.hello-squashfs.raw.tmp /var/lib/extensions/hello-squashfs.raw && sync'
finish
