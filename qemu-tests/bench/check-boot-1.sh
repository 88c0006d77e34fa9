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
# Last, after every check and reading of the journal, it times three runs in a row of the
# tools' status and unchanged refresh in the booted system ("bench rerun" lines), which
# must leave the merge as it was.
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

# ---- extmerge's phase and step timings -------------------------------------------------
# The debug lines of each class run (EXTMERGE_LOG=info,extmerge_phase=debug from the
# kernel command line): "bench phase UNIT PID CLASS PHASE DURATION_US [IMAGE]". The debug
# line of each step of initrd-stage (src/verbs/initrd_stage.rs, log_step: STAGE, STEP,
# EXIT_STATUS, DURATION_US), with the monotonic time journald received it:
# "bench step UNIT STEP DURATION_US EXIT_STATUS END_US" (spaces in STEP as "_"). And per
# unit its first and last extmerge journal entry: "bench extmerge_entries UNIT FIRST_US
# LAST_US COUNT". With PID 1's "Starting"/"Finished" (bench unit) they split a unit's time
# into start-up, steps and exit.
journalctl -b --no-pager -o export SYSLOG_IDENTIFIER=extmerge 2>/dev/null | awk '
    function flush(u) {
        u = (ou != "" ? ou : (su != "" ? su : "-"))
        if (phase != "") print "bench phase", u, pid, class, phase, us, image
        if (step != "" && us != "") { gsub(/ /, "_", step); print "bench step", u, step, us, (ex == "" ? "-" : ex), ts }
        if (u != "-" && ts != "") {
            if (!(u in first)) { first[u] = ts; order[++nu] = u }
            last[u] = ts; count[u]++
        }
        phase = class = us = image = ou = su = pid = step = ex = ts = ""
    }
    /^$/ { flush(); next }
    /^__MONOTONIC_TIMESTAMP=/ { ts = substr($0, 23) }
    /^PHASE=/ { phase = substr($0, 7) }
    /^CLASS=/ { class = substr($0, 7) }
    /^STEP=/ { step = substr($0, 6) }
    /^EXIT_STATUS=/ { ex = substr($0, 13) }
    /^DURATION_US=/ { us = substr($0, 13) }
    /^IMAGE=/ { image = substr($0, 7) }
    /^OBJECT_SYSTEMD_UNIT=/ { ou = substr($0, 21) }
    /^_SYSTEMD_UNIT=/ { su = substr($0, 15) }
    /^_PID=/ { pid = substr($0, 6) }
    END {
        flush()
        for (i = 1; i <= nu; i++) print "bench extmerge_entries", order[i], first[order[i]], last[order[i]], count[order[i]]
    }'

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

# ---- the tools run again in the booted system ---------------------------------------------
# Under TCG, the first run of a code path pays QEMU's translation of that code; later runs
# reuse it (hardware with KVM pays nothing of the kind). Three runs in a row of each command
# tell that cost from the command's own: "bench rerun TOOL CMD N US EXIT" (wall clock around
# the command, bash's EPOCHREALTIME: no fork for the clock; output discarded). Last of all, so
# that nothing measured above is disturbed, and read-only or unchanged: the status verbs, and
# a refresh of what the initrd merged, which each tool skips (extmerge exits 77, systemd 262
# exits 0 with its skip message). extmerge's refresh is only unchanged where extmerge made
# the merge (its state); on systemd's merge it would merge again, so the systemd variant
# leaves it out. The mounts must be the same ones afterwards.
unset EXTMERGE_LOG # the tools' defaults, as a user runs them
rerun_out=/run/extmerge-bench-rerun
rerun() { # rerun TOOL CMD EXPECTED_EXIT [TEXT]: 3 runs; each exits EXPECTED_EXIT (and prints TEXT)
    local tool=$1 cmd=$2 want=$3 text=${4:-} n t0 t1 rc=() bad=""
    # Nothing but the clock between the runs: the checks come after the third.
    for n in 1 2 3; do
        rc[n]=0
        t0=${EPOCHREALTIME//[^0-9]/}
        "$tool" "$cmd" >"$rerun_out.$n" 2>&1 </dev/null || rc[n]=$?
        t1=${EPOCHREALTIME//[^0-9]/}
        echo "bench rerun $tool $cmd $n $((t1 - t0)) ${rc[n]}"
    done
    for n in 1 2 3; do
        if ((rc[n] != want)); then
            bad+=" run $n exited ${rc[n]} ($(tail -n 2 "$rerun_out.$n" | tr '\n' ' '))"
        elif [[ -n $text ]] && ! grep -qF -- "$text" "$rerun_out.$n"; then
            bad+=" run $n did not print '$text' ($(tail -n 2 "$rerun_out.$n" | tr '\n' ' '))"
        fi
    done
    rm -f "$rerun_out".[123]
    if [[ -z $bad ]]; then
        ok "\`$tool $cmd\` run 3 times in the booted system: exit $want${text:+, \"$text\"} each time"
    else
        not_ok "\`$tool $cmd\` run 3 times in the booted system:$bad"
    fi
}
mounts_before="$(mount_uniq_id /usr) $(mount_uniq_id /opt) $(mount_uniq_id /etc)"
rerun extmerge status 0
rerun systemd-sysext status 0
if [[ $variant == extmerge ]]; then rerun extmerge refresh 77; fi
rerun systemd-sysext refresh 0 "$SYSTEMD_SKIP_MSG"
check_eq "the runs above left /usr, /opt and /etc merged as they were (unique ID/mount ID)" \
    "$mounts_before" "$(mount_uniq_id /usr) $(mount_uniq_id /opt) $(mount_uniq_id /etc)"
finish
