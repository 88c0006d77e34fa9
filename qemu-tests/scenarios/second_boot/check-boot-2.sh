#!/bin/bash
# Second-boot scenario, boot 2 of the same disk: the merged state is what the first boot
# had, and the file written to /etc in boot 1 is in the real /etc.
. ./checklib.sh
. ./samples.sh
check_samples_merged
token=$(cat /var/lib/extmerge-test/boot1-token 2>/dev/null)
check_eq "boot 1's /etc file is in the real /etc (umount -l /etc in a namespace)" "$token" \
    "$(unshare -m sh -c 'umount -l /etc && cat /etc/extmerge-test-boot1' 2>&1)"
check_eq "boot 1's /etc file is visible through the merged /etc" "$token" \
    "$(cat /etc/extmerge-test-boot1 2>&1)"
check "the confext's file is not copied up into the real /etc" \
    unshare -m sh -c 'umount -l /etc && test ! -e /etc/demo-conf/greeting.conf'
finish
