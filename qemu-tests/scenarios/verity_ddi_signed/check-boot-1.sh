#!/bin/bash
# verity_ddi_signed: signed erofs DDIs for both classes.
. ./checklib.sh
sys_rh=$(roothash_of /etc/extensions/hello-ddi.raw)
conf_rh=$(roothash_of /usr/lib/confexts/00-flatcar-default.raw)
check_merged_in_initrd /etc /usr
check_eq "/usr/bin/hello-ddi runs (signed erofs sysext DDI)" "hello from hello-ddi" "$(/usr/bin/hello-ddi 2>&1)"
check "/etc/flatcar-default/defaults.conf from the signed default confext" \
    grep -qx 'default=from 00-flatcar-default' /etc/flatcar-default/defaults.conf
check_dm_verity "the sysext DDI's dm-verity device survived switch-root" "$sys_rh"
check_dm_verity "the confext DDI's dm-verity device survived switch-root" "$conf_rh"
check_journal "extmerge says the sysext DDI is signed" \
    "Using sysext 'hello-ddi' (/etc/extensions/hello-ddi.raw, erofs, signed root hash $sys_rh" \
    -u extmerge-sysroot.service
check_journal "extmerge says the default confext is signed" \
    "Using confext '00-flatcar-default' (/usr/lib/confexts/00-flatcar-default.raw, erofs, signed root hash $conf_rh" \
    -u extmerge-sysroot.service
initrd_lines "Using " | diag
check_status_lists sysext hello-ddi
check_status_lists confext 00-flatcar-default

# Flatcar's /etc: writable, the real /etc is the upper dir.
check_etc_self_upper
token="written at $(date +%s.%N)"
check "write /etc/extmerge-test-write through the merged /etc" sh -c "echo '$token' >/etc/extmerge-test-write && sync"
check_eq "the write is in the real /etc (below the overlay)" "$token" \
    "$(unshare -m sh -c 'umount -l /etc && cat /etc/extmerge-test-write' 2>&1)"
check "the confext's file is not copied up into the real /etc" \
    unshare -m sh -c 'umount -l /etc && test ! -e /etc/flatcar-default/defaults.conf'
check_stock_refresh_skipped systemd-sysext.service systemd-confext.service
check_no_reload

# check and check --os-release open the DDIs the way merge does (one open path, verity and
# signature included): both are accepted, and the same os-release keeps both.
out=$(extmerge check --json=short 2>&1)
check_eq "extmerge check exits 0 on the signed DDIs" 0 "$?"
check_eq "extmerge check ignores no extension of either class" 2 "$(grep -o '"ignored":\[\]' <<<"$out" | wc -l)"
out=$(extmerge check --os-release=/usr/lib/os-release --json=short 2>&1)
check_eq "check --os-release exits 0 when the update keeps every extension" 0 "$?"
for name in hello-ddi 00-flatcar-default; do
    want="{\"name\":\"$name\",\"matches_now\":true,\"matches_next\":true}"
    if grep -qF -- "$want" <<<"$out"; then ok "check --os-release judged the DDI $name"; else
        not_ok "check --os-release judged the DDI $name: $(tr '\n' ' ' <<<"$out")"
    fi
done
check "check --os-release reports nothing lost" grep -qF '"would_stop":[]' <<<"$out"
finish
