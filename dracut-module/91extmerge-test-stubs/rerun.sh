#!/bin/sh
# Re-run extmerge's initrd units (skip path), then force a refresh (replace path), logging
# the mounts stacked on each hierarchy after each step.
set -eu
stacked() { grep -c " $1 " /proc/self/mountinfo || true; }
report() { echo "rerun: $1: /sysroot/etc has $(stacked /sysroot/etc) mount(s), /sysroot/usr has $(stacked /sysroot/usr)"; }
report "before"
systemctl restart extmerge-sysroot-early.service extmerge-sysroot.service
report "after restarting both units"
rc=0
/usr/bin/extmerge --always-refresh=yes refresh --root=/sysroot || rc=$?
echo "rerun: forced refresh exited with $rc"
report "after a forced refresh"
[ "$rc" -eq 0 ]
