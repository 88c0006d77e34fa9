#!/bin/bash
# verity_sidecar: the sidecars' root hash protects the image.
. ./checklib.sh
img=/var/lib/extensions/hello-verity.raw
rh=$(roothash_of "$img")
check_eq "the .roothash sidecar holds the harness's root hash" "$rh" "$(cat /var/lib/extensions/hello-verity.roothash 2>&1)"
check_merged_in_initrd /usr
check_eq "/usr/bin/hello-verity runs (verity squashfs sysext)" "hello from hello-verity" "$(/usr/bin/hello-verity 2>&1)"
check_eq "/usr/bin/hello-dir runs" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_dm_verity "the image's dm-verity device survived switch-root" "$rh"
check_journal "extmerge's line for hello-verity names its root hash" \
    "Using sysext 'hello-verity' ($img, squashfs, verity root hash $rh)" -u extmerge-sysroot.service
initrd_lines "'hello-verity'" | diag
check_status_lists sysext hello-verity
check_stock_refresh_skipped systemd-sysext.service
check_no_reload

# check and check --os-release open the sidecar-verity image the way merge does.
out=$(extmerge --class=sysext check --json=short 2>&1)
check_eq "extmerge check exits 0 on the verity image" 0 "$?"
check "extmerge check ignores no extension" grep -qF '"ignored":[]' <<<"$out"
out=$(extmerge --class=sysext check --os-release=/usr/lib/os-release --json=short 2>&1)
check_eq "check --os-release exits 0" 0 "$?"
want='{"name":"hello-verity","matches_now":true,"matches_next":true}'
if grep -qF -- "$want" <<<"$out"; then ok "check --os-release judged the verity image"; else
    not_ok "check --os-release judged the verity image: $(tr '\n' ' ' <<<"$out")"
fi
finish
