#!/bin/bash
# verity_untrusted: the signature does not verify against /usr/lib/verity.d: refused.
. ./checklib.sh
rh=$(roothash_of /etc/extensions/hello-untrusted.raw)
line=$(initrd_lines "'hello-untrusted'" | grep -F "not trusted" | head -n1)
if [[ -n $line ]]; then
    ok "extmerge refused hello-untrusted, saying the signature is not trusted: ${line#*]: }"
else
    not_ok "no extmerge line saying hello-untrusted's signature is not trusted"
    initrd_lines "'hello-untrusted'" | diag
fi
check "the initrd did not use hello-untrusted" sh -c "! journalctl -b --no-pager -u extmerge-sysroot.service | grep -qF \"Using sysext 'hello-untrusted'\""
check "hello-untrusted's tool is not in /usr" test ! -e /usr/bin/hello-untrusted
check_merged_in_initrd /usr
check_eq "/usr/bin/hello-dir runs (a directory: no image policy applies)" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_eq "the boot reached multi-user.target" active "$(systemctl is-active multi-user.target)"
check "no dm-verity device is left for the refused image" sh -c "! dmsetup ls | grep -q '^$rh-verity'"
finish
