#!/bin/bash
# Boot benchmark (qemu-tests/bench/boot-bench.sh), in the booted guest: check that the
# initrd merged every benchmark extension, and report the initrd timings as
# "bench KEY VALUE..." lines (all times in microseconds of CLOCK_MONOTONIC since boot).
#
# The variant comes from extmerge_bench.variant= on the kernel command line:
#   extmerge  extmerge's units: extmerge-sysroot-early.service (confexts, when the initrd
#             has it) and extmerge-sysroot.service (confexts, then sysexts)
#   systemd   systemd-confext-sysroot.service, then systemd-sysext-sysroot.service
# The extensions to look for are listed in ./bench-extensions ("NAME KIND" lines).
. ./checklib.sh

EXTMERGE_UNITS=(extmerge-sysroot-early.service extmerge-sysroot.service)
SYSTEMD_UNITS=(systemd-confext-sysroot.service systemd-sysext-sysroot.service)
variant=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^extmerge_bench\.variant=//p' | tail -n1)
started() { journal _PID=1 | grep -q -F -- "Starting $1"; }
units=()
case $variant in
    extmerge)
        for u in "${EXTMERGE_UNITS[@]}"; do
            # The early unit is measured when this initrd has it (PID 1 started it).
            if [[ $u == extmerge-sysroot.service ]] || started "$u"; then units+=("$u"); fi
        done
        others=("${SYSTEMD_UNITS[@]}")
        ;;
    systemd)
        units=("${SYSTEMD_UNITS[@]}")
        others=("${EXTMERGE_UNITS[@]}")
        ;;
    *)
        not_ok "extmerge_bench.variant= on the kernel command line is extmerge or systemd (got '${variant:-nothing}')"
        others=()
        ;;
esac
echo "bench variant ${variant:-?}"
# Only this variant's merge ran (the extmerge initrd masks systemd's units).
for u in "${others[@]}"; do
    if started "$u"; then
        not_ok "$u did not run in the $variant variant: PID 1 started it"
    else
        ok "$u did not run in the $variant variant"
    fi
done

# A property of PID 1 (the manager) in microseconds (0 when unset).
prop() {
    local v
    v=$(systemctl show -P "$1" 2>/dev/null)
    [[ $v =~ ^[0-9]+$ ]] && echo "$v" || echo 0
}
# Monotonic microseconds (journal entry's __MONOTONIC_TIMESTAMP) of PID 1's first journal
# line of this boot containing TEXT.
pid1_us() {
    journalctl -b --no-pager -o export _PID=1 2>/dev/null | awk -v t="$1" '
        /^__MONOTONIC_TIMESTAMP=/ { ts = substr($0, 23) }
        /^MESSAGE=/ && index($0, t) { print ts; exit }'
}

# ---- the boot as systemd-analyze sees it (its "initrd" figure is userspace - initrd) ----
initrd_ts=$(prop InitRDTimestampMonotonic)
userspace_ts=$(prop UserspaceTimestampMonotonic)
echo "bench initrd_start_us $initrd_ts"
echo "bench userspace_start_us $userspace_ts"
if ((initrd_ts > 0 && userspace_ts > initrd_ts)); then
    echo "bench initrd_us $((userspace_ts - initrd_ts))"
else
    not_ok "PID 1 reports the initrd and userspace start timestamps ($initrd_ts, $userspace_ts)"
fi
for t in initrd-root-fs.target initrd-fs.target initrd.target; do
    echo "bench reached $t $(pid1_us "Reached target $t")"
done
echo "bench started initrd-switch-root.service $(pid1_us "Starting initrd-switch-root.service")"

# ---- the merge units, from PID 1's journal entries about each (UNIT=) ------------------
# "Starting UNIT" (the start job begins: fork and exec follow) and "Finished UNIT" (the
# oneshot's last ExecStart= process exited successfully): the interval systemd-analyze
# blame shows. PID 1 stops the units when the initrd is left (initrd-cleanup isolates
# initrd-switch-root.target), so their properties are gone in the booted system, but the
# journal keeps these entries, and the "Consumed ... CPU time" one (CPU_USAGE_NSEC=).
# Prints "START_US FINISH_US CPU_NSEC FAILED" (0 or - where missing).
unit_times() {
    journalctl -b --no-pager -o export _PID=1 UNIT="$1" 2>/dev/null | awk '
        /^__MONOTONIC_TIMESTAMP=/ { ts = substr($0, 23) }
        /^MESSAGE=Starting / && s == "" { s = ts }
        /^MESSAGE=Finished / && e == "" { e = ts }
        /^MESSAGE=Failed to start / { f = 1 }
        /^CPU_USAGE_NSEC=/ && c == "" { c = substr($0, 16) }
        END { printf "%s %s %s %d\n", (s == "" ? 0 : s), (e == "" ? 0 : e), (c == "" ? "-" : c), f }'
}
for u in "${units[@]}"; do
    read -r s e cpu failed < <(unit_times "$u")
    echo "bench unit $u $s $e $cpu"
    if ((failed == 0 && s > 0 && e > s)); then
        ok "$u ran and succeeded (PID 1: Starting at $s us, Finished at $e us)"
    else
        not_ok "$u ran and succeeded: PID 1 logged Starting at '$s' us, Finished at '$e' us, failed=$failed"
    fi
    if ((e > 0 && userspace_ts > 0 && e < userspace_ts)); then
        ok "$u finished in the initrd (before PID 1 started in the real root at $userspace_ts us)"
    else
        not_ok "$u finished in the initrd: Finished at '$e' us, userspace started at $userspace_ts us"
    fi
done

# ---- CPU time of the merge units -------------------------------------------------------
# extmerge-bench-cpu.service (test stubs) logged PID 1's CPUUsageNSec of each merge unit in
# the initrd, after they had finished: "bench cpu UNIT NSEC".
journalctl -b --no-pager -o cat _SYSTEMD_UNIT=extmerge-bench-cpu.service 2>/dev/null |
    sed -n 's/^extmerge-bench cpu \([^ ]*\) \([0-9][0-9]*\)$/bench cpu \1 \2/p'

# ---- extmerge's phase timings ----------------------------------------------------------
# The debug lines of each class run (EXTMERGE_LOG=info,extmerge_phase=debug from the
# kernel command line): "bench phase UNIT PID CLASS PHASE DURATION_US [IMAGE]".
journalctl -b --no-pager -o export SYSLOG_IDENTIFIER=extmerge 2>/dev/null | awk '
    function flush() {
        if (phase != "") print "bench phase", (ou != "" ? ou : (su != "" ? su : "-")), pid, class, phase, us, image
        phase = class = us = image = ou = su = pid = ""
    }
    /^$/ { flush(); next }
    /^PHASE=/ { phase = substr($0, 7) }
    /^CLASS=/ { class = substr($0, 7) }
    /^DURATION_US=/ { us = substr($0, 13) }
    /^IMAGE=/ { image = substr($0, 7) }
    /^OBJECT_SYSTEMD_UNIT=/ { ou = substr($0, 21) }
    /^_SYSTEMD_UNIT=/ { su = substr($0, 15) }
    /^_PID=/ { pid = substr($0, 6) }
    END { flush() }'

# ---- every extension's files are visible ----------------------------------------------
check_overlay /usr ro
check_overlay /opt ro
echo "bench etc_options $(findmnt -n -o FSTYPE,OPTIONS --mountpoint /etc | tail -n1)"
n_ok=0 n_all=0 missing=()
while read -r name kind; do
    [[ -z $name || $name == \#* ]] && continue
    n_all=$((n_all + 1))
    out=$("/usr/bin/$name" 2>&1)
    nblobs=$(find "/usr/share/$name" -maxdepth 1 -name 'blob-*' -type f 2>/dev/null | wc -l)
    if [[ $kind == confext ]]; then
        if grep -qx "bench=$name" "/etc/$name/bench.conf" 2>/dev/null; then
            n_ok=$((n_ok + 1))
        else
            missing+=("$name($kind)")
        fi
    elif [[ $out == "bench $name" && -f /opt/$name/marker ]] && ((nblobs == 16)); then
        n_ok=$((n_ok + 1))
    else
        missing+=("$name($kind)")
    fi
done <./bench-extensions
check_eq "every benchmark extension's files are visible ($n_all: /usr/bin, /usr/share, /opt; the confext's in /etc)" \
    "$n_all ${missing[*]:-}" "$n_ok ${missing[*]:-}"
echo "bench merged $n_ok $n_all"

# The booted system's stock refresh units found the merge already made (so the files
# above come from the initrd merge, not from a merge after switch-root).
check_stock_refresh_skipped systemd-sysext.service systemd-confext.service

# ---- diagnostics for the logs -----------------------------------------------------------
for u in "${units[@]}"; do
    echo "# --- $u in this boot's journal:"
    journal _SYSTEMD_UNIT="$u" + UNIT="$u" | grep -v '^-- ' | tail -n 40 | diag
done
echo "# --- systemd-sysext/systemd-confext and (sd-merge) in this boot's journal:"
journal SYSLOG_IDENTIFIER='(sd-merge)' + SYSLOG_IDENTIFIER=systemd-sysext + SYSLOG_IDENTIFIER=systemd-confext |
    grep -v '^-- ' | tail -n 40 | diag
finish
