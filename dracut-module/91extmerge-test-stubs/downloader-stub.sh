#!/bin/sh
# Stub downloader: ask extmerge which Flatcar images are missing (a JSON array of
# {"name", "version", "path", "kind"}), then copy each from the disk labelled "downloads"
# (files named like the image) to its path inside /sysroot. A real downloader fetches and
# verifies instead; like one, this never decides the boot: an image it cannot place is
# left to extmerge's missing-image policy.
set -eu
if ! json=$(/usr/bin/extmerge flatcar-select --root=/sysroot --dry-run --json=short); then
    echo "downloader-stub: extmerge could not say what is missing; placing nothing" >&2
    exit 0
fi
echo "downloader-stub: missing according to extmerge: $json"
paths=$(printf '%s\n' "$json" | grep -o '"path":"[^"]*"' | sed 's/^"path":"//; s/"$//')
if [ -z "$paths" ]; then
    echo "downloader-stub: nothing to place"
    exit 0
fi
dev=/dev/disk/by-label/downloads
mnt=/run/downloader-stub
if ! udevadm wait --timeout=30 "$dev"; then
    echo "downloader-stub: no disk labelled 'downloads' after 30 s; placing nothing" >&2
    exit 0
fi
mkdir -p "$mnt"
mount -o ro "$dev" "$mnt"
for p in $paths; do
    src=$mnt/${p##*/}
    if [ ! -f "$src" ]; then
        echo "downloader-stub: the download disk has no ${p##*/}" >&2
        continue
    fi
    mkdir -p "/sysroot${p%/*}"
    # Under a temporary name, then renamed: the selection never sees half an image.
    cp "$src" "/sysroot$p.downloading"
    mv "/sysroot$p.downloading" "/sysroot$p"
    echo "downloader-stub: placed $p"
done
umount "$mnt"
