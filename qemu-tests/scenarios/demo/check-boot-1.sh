#!/bin/bash
# The demo guest: check the merge, and print what qemu-tests/demo.sh shows ("demo| " lines).
. ./checklib.sh
demo() { sed 's/^/demo| /'; }

check_merged_in_initrd /etc /usr /opt
check_eq "hello-sysext.service (from a sysext's .wants) is active" active "$(systemctl is-active hello-sysext.service 2>&1)"
check_no_reload
check "/etc/demo-conf/greeting.conf from the confext" grep -q '^greeting=' /etc/demo-conf/greeting.conf

# What extmerge did in the initrd (both units), with the journal's monotonic timestamps.
# (PID 1's lines about tearing the units down at switch-root are left out.)
journal "${EXTMERGE_UNITS[@]}" | grep -v -e '^-- ' -e 'Deactivated successfully' -e ': Consumed ' -e ' Stopped ' |
    sed 's/^\(\[[^]]*\]\) [^ ]* [^ ]*: /\1 /' | sed 's/^/initrd: /' | demo
parse=$(first_ts "Starting initrd-parse-etc.service" _PID=1)
for u in extmerge-sysroot-early.service extmerge-sysroot.service; do
    start=$(first_ts "Starting $u" _PID=1)
    end=$(first_ts "Finished $u" _PID=1)
    awk -v u="$u" -v s="$start" -v e="$end" 'BEGIN {
        printf "unit: %s ran from %.3f s to %.3f s (%d ms, under TCG emulation)\n", u, s, e, (e - s) * 1000 }' | demo
done
echo "unit: initrd-parse-etc.service started at $parse s" | demo
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
