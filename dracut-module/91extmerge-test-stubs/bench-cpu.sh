#!/bin/sh
# extmerge-bench-cpu.service: one "extmerge-bench cpu UNIT NSEC" line per merge unit that ran.
for u in extmerge-sysroot-early.service extmerge-sysroot.service \
    systemd-confext-sysroot.service systemd-sysext-sysroot.service; do
    nsec=$(systemctl show -P CPUUsageNSec "$u" 2>/dev/null)
    case $nsec in
        '' | *[!0-9]*) ;;
        *) echo "extmerge-bench cpu $u $nsec" ;;
    esac
done
