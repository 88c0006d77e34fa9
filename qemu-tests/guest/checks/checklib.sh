# Assertions for the check-boot-N.sh scripts; runs inside the booted guest (bash).
# Sourced as `. ./checklib.sh` (the checks disk is the working directory). Each check
# prints one line on stdout, which run-checks sends to the results port:
#   ok <what>
#   not ok <what>: <why>
#   # <diagnostics>
# shellcheck shell=bash

FAILED=0

# journalctl options for extmerge's two initrd units (-u also matches OBJECT_SYSTEMD_UNIT,
# which extmerge sets: a short-lived process's lines can lack _SYSTEMD_UNIT). Stage 1 merges the
# confexts before Ignition; stage 2 merges what changed after it, and the sysexts.
EXTMERGE_UNITS=(-u extmerge-sysroot-early.service -u extmerge-sysroot.service)

ok() { echo "ok $*"; }
not_ok() {
    echo "not ok $*"
    FAILED=1
}
diag() { sed 's/^/# /'; }

# check WHAT CMD...: ok when CMD succeeds; else not ok with the tail of its output.
check() {
    local what=$1 out rc=0
    shift
    out=$("$@" 2>&1) || rc=$?
    if ((rc == 0)); then
        ok "$what"
    else
        not_ok "$what: exit status $rc${out:+: $(printf '%s' "$out" | tail -n 3 | tr '\n' ' ')}"
    fi
}

# check_eq WHAT EXPECTED ACTUAL
check_eq() {
    if [[ $2 == "$3" ]]; then
        ok "$1"
    else
        not_ok "$1: expected '$2', got '$3'"
    fi
}

# The journal of this boot (initrd included) with monotonic timestamps.
journal() { journalctl -b --no-pager -o short-monotonic "$@"; }

# Monotonic seconds of the first journal line of this boot containing TEXT (fixed
# string), optionally restricted by journalctl match arguments; empty if none.
first_ts() {
    local text=$1
    shift
    journal "$@" | grep -m1 -F -- "$text" | sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'
}

# ts_before A B: true when monotonic timestamp A is earlier than B.
ts_before() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "" && b != "" && a + 0 < b + 0) }'; }

# The extensions were merged by extmerge's initrd units onto each of the
# given hierarchies, before PID 1 started initrd-parse-etc.service.
check_merged_in_initrd() {
    local parse h ts
    parse=$(first_ts "Starting initrd-parse-etc.service" _PID=1)
    if [[ -z $parse ]]; then
        not_ok "initrd-parse-etc.service start found in the journal"
        return
    fi
    for h in "$@"; do
        ts=$(first_ts "Merged extensions into '/sysroot$h'" "${EXTMERGE_UNITS[@]}")
        if [[ -z $ts ]]; then
            not_ok "initrd merge of $h: no \"Merged extensions into '/sysroot$h'\" from extmerge's initrd units"
        elif ts_before "$ts" "$parse"; then
            ok "initrd merged $h at ${ts}s, before initrd-parse-etc.service started at ${parse}s"
        else
            not_ok "initrd merge of $h at ${ts}s is not before initrd-parse-etc.service (${parse}s)"
        fi
    done
}

# check_journal WHAT TEXT [journalctl matches...]: this boot's journal has a line with TEXT.
check_journal() {
    local what=$1 text=$2
    shift 2
    if journal "$@" | grep -q -F -- "$text"; then
        ok "$what"
    else
        not_ok "$what: no journal line with \"$text\"${*:+ (matching $*)}"
    fi
}

# check_order A B: PID 1's journal line containing A comes before the one containing B.
check_order() {
    local a b
    a=$(first_ts "$1" _PID=1)
    b=$(first_ts "$2" _PID=1)
    if ts_before "$a" "$b"; then
        ok "\"$1\" (${a}s) before \"$2\" (${b}s)"
    else
        not_ok "order: \"$1\" (${a:-missing}) is not before \"$2\" (${b:-missing})"
    fi
}

# No daemon-reload in this boot, so units from extensions came from the initrd merge.
check_no_reload() {
    local n
    n=$(journal _PID=1 | grep -c -E 'Reloading( requested|\.\.\.|$)' || true)
    check_eq "PID 1 was never reloaded in this boot" 0 "$n"
}

# Hierarchy H is an overlay whose options contain each of the given strings.
check_overlay() {
    local h=$1 fstype opts o
    shift
    fstype=$(findmnt -n -o FSTYPE --mountpoint "$h" | tail -n1)
    opts=$(findmnt -n -o OPTIONS --mountpoint "$h" | tail -n1)
    if [[ $fstype != overlay ]]; then
        not_ok "$h is an overlay: it is '${fstype:-not a mount point}'"
        return
    fi
    for o in "$@"; do
        if [[ ,$opts, != *",$o,"* ]]; then
            not_ok "$h overlay has option $o: options are $opts"
            return
        fi
    done
    ok "$h is an overlay${*:+ with $*}"
}

# /etc is the writable overlay that is its own upper dir (Flatcar's mutable mode "auto").
# The work dir is /.systemd-etc-workdir, or a unique sibling of it (…-workdir-<hex>) when a
# refresh replaced the overlay (the old and the new one cannot share a work dir).
check_etc_self_upper() {
    local opts
    check_overlay /etc rw upperdir=/sysroot/etc
    opts=$(findmnt -n -o OPTIONS --mountpoint /etc | tail -n1)
    if [[ ,$opts, =~ ,workdir=/sysroot/\.systemd-etc-workdir(-[0-9a-f]{16})?, ]]; then
        ok "/etc overlay's work dir is /.systemd-etc-workdir[-<hex>] on the root"
    else
        not_ok "/etc overlay's work dir is /.systemd-etc-workdir[-<hex>]: options are $opts"
    fi
}

# check_single_overlay H...: exactly one mount at each hierarchy, an overlay (no stacking).
check_single_overlay() {
    local h n
    for h in "$@"; do
        n=$(awk -v h="$h" '$5 == h' /proc/self/mountinfo | wc -l)
        check_eq "exactly one mount on $h (no stacked overlays)" 1 "$n"
    done
}

# systemd's own systemd-{sysext,confext}-sysroot.service are in the initrd (dracut's
# systemd-sysext module) but masked by our module: PID 1 never started them.
check_sysroot_units_not_run() {
    local u
    for u in systemd-sysext-sysroot.service systemd-confext-sysroot.service; do
        if journal _PID=1 | grep -qE "(Starting|Finished|Failed to start) $u"; then
            not_ok "$u did not run in the initrd: $(journal _PID=1 | grep -F "$u" | head -n2 | tr '\n' ' ')"
        else
            ok "$u did not run in the initrd (masked by the extmerge dracut module)"
        fi
    done
}

# Print a journal excerpt (extmerge and the initrd units) when something failed.
finish() {
    if ((FAILED)); then
        echo "# --- extmerge and initrd units in this boot's journal:"
        journal "${EXTMERGE_UNITS[@]}" -u ignition-files.service \
            -u initrd-setup-root-after-ignition.service | tail -n 60 | diag
        echo "# --- stock refresh units in this boot's journal:"
        journal _SYSTEMD_UNIT=systemd-sysext.service + _SYSTEMD_UNIT=systemd-confext.service \
            + SYSLOG_IDENTIFIER='(sd-merge)' | tail -n 30 | diag
        echo "# --- mounts:"
        local m
        for m in /usr /opt /etc; do
            findmnt -n -o TARGET,FSTYPE,OPTIONS --mountpoint "$m" 2>&1 | diag
        done
        echo "# --- dm devices and loop devices:"
        { dmsetup ls 2>&1; losetup -l -n -O NAME,BACK-FILE 2>&1; } | diag
    fi
    return 0
}

# ---- refresh and verity helpers (issues 5 and 6) ---------------------------------------

# The mount ID of the topmost mount at H (/proc/self/mountinfo), empty if none.
mount_id() { awk -v h="$1" '$5 == h { id = $1 } END { print id }' /proc/self/mountinfo; }

# "H=ID ..." for each given hierarchy.
mount_ids() {
    local h
    for h in "$@"; do
        printf '%s=%s ' "$h" "$(mount_id "$h")"
    done
}

# systemd's message when `systemd-sysext refresh` / `systemd-confext refresh` finds the
# merge it would make already in place.
SYSTEMD_SKIP_MSG="Skipping extension refresh because no change was found"

# Monotonic timestamps of systemd's skip messages in this boot. The stock units' refresh
# runs in a forked child, "(sd-merge)", that often exits before journald can attribute its
# lines to the unit (no _SYSTEMD_UNIT), so the lines are matched by their identifier.
stock_skip_ts() {
    journal SYSLOG_IDENTIFIER='(sd-merge)' + SYSLOG_IDENTIFIER=systemd-sysext \
        + SYSLOG_IDENTIFIER=systemd-confext | grep -F -- "$SYSTEMD_SKIP_MSG" |
        sed -n 's/^\[ *\([0-9.]*\)\].*/\1/p'
}

# check_stock_refresh_skipped UNIT...: the stock unit ran in this boot, succeeded, and
# systemd's skip message was logged between PID 1's "Starting UNIT" and "Finished UNIT".
check_stock_refresh_skipped() {
    local u state start end n
    for u in "$@"; do
        state="$(systemctl show -P ActiveState "$u") $(systemctl show -P Result "$u")"
        check_eq "$u ran and succeeded in this boot" "active success" "$state"
        start=$(first_ts "Starting $u" _PID=1)
        end=$(first_ts "Finished $u" _PID=1)
        if [[ -z $start || -z $end ]]; then
            not_ok "$u skipped its refresh: PID 1 did not log both its start (${start:-none}) and finish (${end:-none})"
            continue
        fi
        n=$(stock_skip_ts | awk -v a="$start" -v b="$end" '$1 + 0 >= a + 0 && $1 + 0 <= b + 0' | wc -l)
        if ((n >= 1)); then
            ok "$u skipped its refresh: systemd logged \"$SYSTEMD_SKIP_MSG\" while it ran (${start}s-${end}s)"
        else
            not_ok "$u skipped its refresh: no \"$SYSTEMD_SKIP_MSG\" while it ran (${start}s-${end}s)"
        fi
    done
}

# The root hash run-scenario.sh recorded for the image it placed at DEST (the checks
# disk's `roothashes`); empty if none.
roothash_of() { awk -v d="$1" '$1 == d { print $2 }' ./roothashes 2>/dev/null; }

# Names of the device-mapper devices, one per line.
dm_names() { dmsetup ls 2>/dev/null | awk '$1 != "No" { print $1 }'; }

# check_dm_verity WHAT ROOTHASH: a device-mapper device named ROOTHASH-verity exists.
check_dm_verity() {
    local what=$1 rh=$2
    if [[ -z $rh ]]; then
        not_ok "$what: no root hash recorded by the harness"
    elif dm_names | grep -qx -- "$rh-verity"; then
        ok "$what: dmsetup ls shows $rh-verity"
    else
        not_ok "$what: no $rh-verity in dmsetup ls: $(dm_names | tr '\n' ' ')"
    fi
}

# Backing files of the attached loop devices (base names, sorted, one line), optionally
# only those matching a pattern (grep -E).
loop_backing_files() {
    local f out=()
    for f in /sys/block/loop*/loop/backing_file; do
        [[ -r $f ]] && out+=("$(basename "$(cat "$f")")")
    done
    ((${#out[@]})) && printf '%s\n' "${out[@]}" | grep -E -- "${1:-.}" | sort | tr '\n' ' ' | sed 's/ $//'
    return 0
}

# The attached loop devices as "loopN:BACKING-BASENAME", one per line, sorted.
loop_devices() {
    local f d
    for f in /sys/block/loop*/loop/backing_file; do
        [[ -r $f ]] || continue
        d=${f#/sys/block/}
        echo "${d%%/*}:$(basename "$(cat "$f")")"
    done | sort
}

# One process per initrd unit (issue 17.3, `extmerge initrd-stage`): the lines extmerge logged
# for UNIT in this boot (its own cgroup's, or naming it in OBJECT_SYSTEMD_UNIT) all come from
# one _PID, and there are some.
check_one_process() {
    local unit=$1 pids
    pids=$(journalctl -b --no-pager -o export SYSLOG_IDENTIFIER=extmerge | awk -v u="$unit" '
        /^_PID=/ { pid = substr($0, 6) }
        $0 == "_SYSTEMD_UNIT=" u || $0 == "OBJECT_SYSTEMD_UNIT=" u { mine = 1 }
        /^$/ { if (mine && pid != "") print pid; pid = ""; mine = 0 }
        END { if (mine && pid != "") print pid }' | sort -u)
    check_eq "$unit: every extmerge line comes from one process" 1 "$(grep -c . <<<"$pids")"
}

# The extmerge lines of this boot's initrd run (both units) containing TEXT.
initrd_lines() { journal "${EXTMERGE_UNITS[@]}" | grep -F -- "$1"; }

# check_booted_units_skipped: systemd-sysext.service and systemd-confext.service run extmerge
# (the booted-system drop-ins are linked), ran at boot and succeeded, and extmerge exited 77:
# the refresh found the initrd's merge unchanged and touched nothing.
check_booted_units_skipped() {
    local u c
    for u in systemd-sysext.service systemd-confext.service; do
        c=${u#systemd-}
        c=${c%.service}
        check_eq "$u runs extmerge (the drop-in is linked)" "/usr/bin/extmerge --class=$c refresh" \
            "$(systemctl cat "$u" | grep '^ExecStart=' | tail -n1 | sed 's/^ExecStart=//')"
        check_eq "$u ran at boot and succeeded" "active success" \
            "$(systemctl show -P ActiveState "$u") $(systemctl show -P Result "$u")"
        check_eq "$u's extmerge skipped at boot (exit 77): the initrd's merge is kept" 77 \
            "$(systemctl show -P ExecMainStatus "$u")"
        journalctl -b --no-pager -o cat -u "$u" | grep -E "Refreshing|Skipping|Using" | diag
    done
}

# systemd-sysext/systemd-confext status (CLASS) lists NAME.
check_status_lists() {
    local class=$1 name=$2 s
    s=$(SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 "systemd-$class" status --no-pager 2>&1)
    if grep -qw -- "$name" <<<"$s"; then
        ok "systemd-$class status lists $name"
    else
        not_ok "systemd-$class status lists $name: $(tr '\n' ' ' <<<"$s")"
    fi
}

# ---- a reader busy in the merged hierarchies during a refresh (issues 6 and 16) ------------

READER_STOP=/run/extmerge-test-reader.stop
READER_OUT=/run/extmerge-test-reader.out

# reader_start FILE=HEAD...: in the background, open and read each FILE (without forking) over
# and over, counting a read as failed unless the file starts with HEAD; until reader_stop.
reader_start() {
    local -a specs=("$@")
    rm -f "$READER_STOP" "$READER_OUT"
    (
        reads=0 fails=0
        while [[ ! -e $READER_STOP ]]; do
            for spec in "${specs[@]}"; do
                f=${spec%%=*} want=${spec#*=} line=""
                if exec {fd}<"$f"; then
                    IFS= read -r -n "${#want}" line <&"$fd" || true
                    exec {fd}<&-
                fi 2>/dev/null
                if [[ $line == "$want" ]]; then
                    reads=$((reads + 1))
                else
                    fails=$((fails + 1))
                fi
            done
        done
        echo "$reads $fails" >"$READER_OUT"
    ) &
    READER_PID=$!
}

# reader_stop: stop the reader; prints "READS FAILS" ("0 unknown" if it never reported).
reader_stop() {
    local _
    touch "$READER_STOP"
    for _ in $(seq 1 30); do
        [[ -s $READER_OUT ]] && break
        sleep 1
    done
    kill "$READER_PID" 2>/dev/null || true
    wait "$READER_PID" 2>/dev/null || true
    cat "$READER_OUT" 2>/dev/null || echo "0 unknown"
}

# run_with_reader WHAT FILES -- CMD...: run CMD while a reader (reader_start FILES) is busy;
# checks that CMD exits 0, the reader read, and no read failed. FILES as for reader_start.
run_with_reader() {
    local what=$1 rc=0 out reads fails
    shift
    local -a files=()
    while [[ $1 != -- ]]; do
        files+=("$1")
        shift
    done
    shift
    reader_start "${files[@]}"
    sleep 2
    out=$("$@" 2>&1) || rc=$?
    check_eq "$what: $* exits 0" 0 "$rc"
    [[ -z $out ]] || echo "$out" | diag
    sleep 2
    read -r reads fails <<<"$(reader_stop)"
    check "$what: the reader read files during it ($reads reads)" test "$reads" -gt 0
    check_eq "$what: no read failed during it (of $reads)" 0 "$fails"
    echo "$what: reader: $reads reads, $fails failed" | diag
}

# ---- the initrd's mounts kept by the booted system (issue 15) ------------------------------

# "UNIQ/ID" of the topmost mount at H: the 64-bit unique mount ID (statmount, never reused)
# and the mountinfo ID; the format extmerge-test-mountids.service logs in the initrd.
mount_uniq_id() {
    echo "$(findmnt --kernel=listmount -n -o UNIQ-ID --mountpoint "$1" | tail -n1)/$(mount_id "$1")"
}

# check_mount_ids_since_initrd H...: each hierarchy's topmost mount is still the one the
# initrd left on /sysroot/H (extmerge-test-mountids.service, extmerge_test.mountids), by its
# unique ID: nothing in the booted system (the stock refresh units) replaced it.
check_mount_ids_since_initrd() {
    local line h want now
    line=$(journal -u extmerge-test-mountids.service | grep -m1 -o 'mountids:.*')
    if [[ -z $line ]]; then
        not_ok "the initrd logged its mount IDs (extmerge-test-mountids.service)"
        return
    fi
    echo "initrd: $line" | diag
    for h in "$@"; do
        want=$(grep -o " $h=[^ ]*" <<<"$line" | cut -d= -f2)
        now=$(mount_uniq_id "$h")
        if [[ -z $want || $want == none/* ]]; then
            not_ok "$h keeps its mount from the initrd: the initrd logged no mount on /sysroot$h"
        elif [[ $want == "$now" ]]; then
            ok "$h keeps its mount from the initrd (unique ID/mount ID $now)"
        else
            not_ok "$h keeps its mount from the initrd: the initrd left $want, now $now"
        fi
    done
}

# check_stock_refresh_merged_nothing UNIT...: Flatcar's own criterion (kola
# confext.skiprefresh): no "Merged extensions into" from the stock unit in this boot. Its
# forked child "(sd-merge)" is matched by identifier too (see stock_skip_ts); in this boot only
# the stock tools log under these identifiers.
check_stock_refresh_merged_nothing() {
    local u lines
    for u in "$@"; do
        lines=$(journal _SYSTEMD_UNIT="$u" + SYSLOG_IDENTIFIER='(sd-merge)' + SYSLOG_IDENTIFIER="${u%.service}" |
            grep -F "Merged extensions into" || true)
        if [[ -z $lines ]]; then
            ok "$u logged no \"Merged extensions into\" in this boot"
        else
            not_ok "$u logged no \"Merged extensions into\": $(head -n2 <<<"$lines" | tr '\n' ' ')"
        fi
    done
}
