#!/bin/bash
# Second-boot scenario, boot 1: write a file to the merged (writable) /etc.
. ./checklib.sh
check_etc_self_upper
token="written in boot 1 at $(date +%s.%N)"
if echo "$token" >/etc/extmerge-test-boot1 && sync; then
    ok "wrote /etc/extmerge-test-boot1 through the merged /etc"
    echo "$token" >/var/lib/extmerge-test/boot1-token
else
    not_ok "writing /etc/extmerge-test-boot1 failed"
fi
check_eq "the write is in the real /etc (below the overlay) at once" "$token" \
    "$(unshare -m sh -c 'umount -l /etc && cat /etc/extmerge-test-boot1' 2>&1)"
check_eq "/usr/bin/hello-dir runs" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
finish
