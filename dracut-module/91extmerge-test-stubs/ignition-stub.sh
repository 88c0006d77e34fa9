#!/bin/sh
# Ignition stub: mount what the config disk's `mounts` lists (LABEL /PATH: Ignition's mount
# stage, e.g. the user's /var on a disk of its own), then copy root/ of the disk labelled
# "ignition" into /sysroot. The mounts stay, as Ignition's do until its umount stage; the stub
# has no umount stage, so a /var mounted here is the one stage 2 finds mounted and uses.
set -eu
dev=/dev/disk/by-label/ignition
mnt=/run/ignition-stub
if ! udevadm wait --timeout=30 "$dev"; then
    echo "ignition-stub: first boot but no config disk labelled 'ignition' after 30 s" >&2
    exit 1
fi
mkdir -p "$mnt"
mount -o ro "$dev" "$mnt"
rc=0
if [ -f "$mnt/mounts" ]; then
    while read -r label where; do
        disk=/dev/disk/by-label/$label
        if ! udevadm wait --timeout=30 "$disk"; then
            echo "ignition-stub: no disk labelled '$label' after 30 s" >&2
            rc=1
            break
        fi
        mkdir -p "/sysroot$where"
        mount "$disk" "/sysroot$where" || {
            rc=$?
            break
        }
        echo "ignition-stub: mounted LABEL=$label at /sysroot$where"
    done <"$mnt/mounts"
fi
if [ "$rc" -eq 0 ] && [ -d "$mnt/root" ]; then
    echo "ignition-stub: writing the config disk's files into /sysroot"
    cp -av "$mnt/root/." /sysroot/ || rc=$?
elif [ "$rc" -eq 0 ]; then
    echo "ignition-stub: the config disk has no root/ tree: nothing to write"
fi
umount "$mnt"
exit "$rc"
