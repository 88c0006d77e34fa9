#!/bin/bash
# refresh_live: refresh the running system twice, with a reader busy in /usr each time.
#   1. add hello-erofs.raw to /etc/extensions, refresh: it appears, no read fails;
#   2. remove it again, refresh: it goes, no read fails, and the loop devices of the
#      overlay that refresh 1 made are released.
# The loop devices of the initrd's overlay are not checked for release: every process
# started before the first refresh (PID 1, journald, this script's bash) maps /usr files
# through that overlay and keeps it (and its lower layers) alive after the lazy detach;
# they are autoclear, so they go with the last of those processes.
. ./checklib.sh
check_merged_in_initrd /usr /opt
check_eq "/usr/bin/hello-squashfs runs before the refresh" "hello from hello-squashfs" "$(/usr/bin/hello-squashfs 2>&1)"
check "hello-erofs is not merged yet" test ! -e /usr/bin/hello-erofs
check_eq "sysext loop devices before the refresh: the merged image only" "hello-squashfs.raw" "$(loop_backing_files hello)"

# A base-OS file and files of merged sysexts (a squashfs image's and a directory's).
READ=(/usr/bin/ls=$'\x7fELF' /usr/bin/hello-squashfs='#!/bin/sh' /usr/bin/hello-dir='#!/bin/sh')

# ---- refresh 1: add an image
mid0=$(mount_id /usr)
loops0=$(loop_devices)
cp /var/lib/extmerge-test-pending/hello-erofs.raw /etc/extensions/hello-erofs.raw
run_with_reader "refresh 1 (hello-erofs added)" "${READ[@]}" -- extmerge --class=sysext refresh
mid1=$(mount_id /usr)
check "refresh 1: /usr is a new overlay (mount ID $mid0 -> $mid1)" test "$mid0" != "$mid1"
check "refresh 1: the replaced overlay is detached" sh -c "! awk '{print \$1}' /proc/self/mountinfo | grep -qx '$mid0'"
check_eq "/usr/bin/hello-erofs (the new image) runs" "hello from hello-erofs" "$(/usr/bin/hello-erofs 2>&1)"
check_eq "/usr/bin/hello-squashfs still runs" "hello from hello-squashfs" "$(/usr/bin/hello-squashfs 2>&1)"
check_eq "/usr/bin/hello-dir still runs" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_status_lists sysext hello-erofs
loops1=$(loop_devices)
new1=$(comm -13 <(echo "$loops0") <(echo "$loops1"))
check_eq "refresh 1 attached one loop device per merged image" "hello-erofs.raw hello-squashfs.raw" \
    "$(cut -d: -f2 <<<"$new1" | sort | tr '\n' ' ' | sed 's/ $//')"
echo "loop devices after refresh 1: $(tr '\n' ' ' <<<"$loops1")" | diag
for l in $(comm -12 <(echo "$loops0") <(echo "$loops1") | cut -d: -f1); do
    check_eq "$l (the initrd overlay's) is autoclear: released with the last user of the old /usr" 1 \
        "$(cat "/sys/block/$l/loop/autoclear" 2>&1)"
done

# ---- refresh 2: remove it again
rm /etc/extensions/hello-erofs.raw
run_with_reader "refresh 2 (hello-erofs removed)" "${READ[@]}" -- extmerge --class=sysext refresh
check "refresh 2: /usr is a new overlay (mount ID $mid1 -> $(mount_id /usr))" test "$mid1" != "$(mount_id /usr)"
check "/usr/bin/hello-erofs is gone" test ! -e /usr/bin/hello-erofs
check_eq "/usr/bin/hello-squashfs still runs" "hello from hello-squashfs" "$(/usr/bin/hello-squashfs 2>&1)"
# No long-lived process started between the refreshes, so nothing keeps refresh 1's overlay.
left=""
for _ in $(seq 1 20); do
    left=$(comm -12 <(echo "$new1") <(loop_devices) | tr '\n' ' ' | sed 's/ $//')
    [[ -z $left ]] && break
    sleep 1
done
check_eq "refresh 2 released the loop devices of the overlay it replaced ($(tr '\n' ' ' <<<"$new1"))" "" "$left"
check_eq "no loop device is left for hello-erofs.raw (no longer merged)" "" "$(loop_backing_files hello-erofs)"
echo "loop devices after refresh 2: $(loop_devices | tr '\n' ' ')" | diag
rc=0
extmerge --class=sysext refresh >/dev/null 2>&1 || rc=$?
check_eq "a third extmerge refresh exits 77 (nothing changed)" 77 "$rc"
finish
