#!/bin/sh
# systemd generator (test stub): with extmerge_test.oem_disk on the kernel command line, point
# sysroot-oem.mount at the disk labelled OEM (a drop-in in the generator directory $1).
set -eu
grep -qw 'extmerge_test\.oem_disk' /proc/cmdline || exit 0
mkdir -p "$1/sysroot-oem.mount.d"
printf '[Mount]\nWhat=/dev/disk/by-label/OEM\nType=ext4\n' >"$1/sysroot-oem.mount.d/oem-disk.conf"
