#!/bin/sh
# Log the mounts on /sysroot/etc, /sysroot/usr and /sysroot/var as the initrd leaves them:
# the topmost mount's 64-bit unique ID (never reused, kept by switch-root's move) and its
# mountinfo ID. The booted system's checks compare them with what is mounted after the stock
# refresh units ran.
set -eu
line="mountids:"
for h in /sysroot/etc /sysroot/usr /sysroot/var; do
    uniq=$(findmnt --kernel=listmount -n -o UNIQ-ID --mountpoint "$h" | tail -n1)
    id=$(awk -v h="$h" '$5 == h { id = $1 } END { print id }' /proc/self/mountinfo)
    line="$line ${h#/sysroot}=${uniq:-none}/${id:-none}"
done
echo "$line"
