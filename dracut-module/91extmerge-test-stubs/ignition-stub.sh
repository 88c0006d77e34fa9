#!/bin/sh
# Ignition stub: copy root/ of the disk labelled "ignition" into /sysroot.
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
if [ -d "$mnt/root" ]; then
    echo "ignition-stub: writing the config disk's files into /sysroot"
    cp -av "$mnt/root/." /sysroot/ || rc=$?
else
    echo "ignition-stub: the config disk has no root/ tree: nothing to write"
fi
umount "$mnt"
exit "$rc"
