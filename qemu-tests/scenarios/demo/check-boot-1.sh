#!/bin/bash
# The demo guest: check the merge, and print what qemu-tests/demo.sh shows ("demo| " lines).
. ./checklib.sh
demo() { sed 's/^/demo| /'; }

check_merged_in_initrd /etc /usr /opt
check_eq "hello-sysext.service (from a sysext's .wants) is active" active "$(systemctl is-active hello-sysext.service 2>&1)"
check_no_reload
check "/etc/demo-conf/greeting.conf from the confext" grep -q '^greeting=' /etc/demo-conf/greeting.conf

# What extmerge did in the initrd, with the journal's monotonic timestamps.
journal _SYSTEMD_UNIT=extmerge-sysroot.service | grep -v '^-- ' |
    sed 's/^\(\[[^]]*\]\) [^ ]* [^ ]*: /\1 /' | sed 's/^/initrd: /' | demo
start=$(first_ts "Starting extmerge-sysroot.service" _PID=1)
end=$(first_ts "Finished extmerge-sysroot.service" _PID=1)
parse=$(first_ts "Starting initrd-parse-etc.service" _PID=1)
awk -v s="$start" -v e="$end" -v p="$parse" 'BEGIN {
    printf "unit: extmerge-sysroot.service ran from %.3f s to %.3f s (%d ms, under TCG emulation); initrd-parse-etc.service started at %.3f s\n", s, e, (e - s) * 1000, p }' | demo
show() {
    echo "cmd: \$ $*" | demo
    "$@" 2>&1 | sed 's/^/out: /' | demo
}
SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 show systemd-sysext status
SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 show systemd-confext status
show hello-dir
show hello-squashfs
show hello-erofs
show cat /etc/demo-conf/greeting.conf
finish
