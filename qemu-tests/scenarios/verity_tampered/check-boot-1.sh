#!/bin/bash
# verity_tampered: dm-verity catches the flipped byte; the image is skipped, nothing leaks.
. ./checklib.sh
rh=$(roothash_of /etc/extensions/hello-tampered.raw)
line=$(initrd_lines "'hello-tampered'" | grep -v "Using sysext" | head -n1)
if [[ -n $line ]]; then
    ok "extmerge logged why it did not merge hello-tampered: ${line#*]: }"
else
    not_ok "extmerge logged nothing about hello-tampered being refused"
fi
check_journal "the kernel's dm-verity reported the corrupted data block" "is corrupted" _TRANSPORT=kernel
journal _TRANSPORT=kernel | grep -F "is corrupted" | head -n 2 | diag
check "the initrd did not use hello-tampered" sh -c "! journalctl -b --no-pager -u extmerge-sysroot.service | grep -qF \"Using sysext 'hello-tampered'\""
check "hello-tampered's tool is not in /usr" test ! -e /usr/bin/hello-tampered
check_merged_in_initrd /usr
check_eq "/usr/bin/hello-dir runs (the other sysext is merged)" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_journal "extmerge-sysroot.service finished in the initrd" "Finished extmerge-sysroot.service" _PID=1
check_eq "the boot reached multi-user.target" active "$(systemctl is-active multi-user.target)"
check "no dm-verity device is left for the tampered image" sh -c "! dmsetup ls | grep -q '^$rh-verity'"
check "no loop device is left for the tampered image" sh -c "! cat /sys/block/loop*/loop/backing_file 2>/dev/null | grep -q hello-tampered"
finish
