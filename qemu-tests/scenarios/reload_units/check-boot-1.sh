#!/bin/bash
# reload_units: upstream's booted-system blocks of TEST-50-DISSECT against extmerge.
#   1. upstream/ (copied from the chroot's systemd-tests by run-scenario.sh) is the version of
#      the guest's systemd;
#   2. sysext.sh's blocks "Check EXTENSION_RESTART_UNITS=…" and "Check
#      EXTENSION_RELOAD_OR_RESTART_UNITS=…", each made into a script of its own (the prologue,
#      run_sysext_tests' header, that one case, and the call on /), run with extmerge as
#      systemd-sysext (a symlink in a directory put first in PATH);
#   3. dissect.sh's EXTENSION_RELOAD_MANAGER= steps (the app-reload image of util.sh, whose
#      foo.service only an Upholds= drop-in starts, after a daemon-reload), with extmerge only:
#      they wait for foo's output in this boot's journal, which a first run would leave behind.
# A block passes when its script exits 0 having reached its last line (a marker on fd 9: a
# block that exits 0 early, as the --root= variant does, ran nothing and is not a pass).
. ./checklib.sh

UP=$EXTMERGE_TEST_DIR/upstream
WORK=/run/extmerge-upstream
AS_SYSTEMD=/run/extmerge-as-systemd
rm -rf "$WORK" "$AS_SYSTEMD"
mkdir -p "$WORK/units" "$WORK/logs" "$AS_SYSTEMD"

# shellcheck disable=SC2016 # dpkg-query's format
guest_sd=$(dpkg-query -W -f='${Version}' systemd)
check_eq "upstream's test files are from systemd-tests $guest_sd, the guest's systemd" \
    "$guest_sd" "$(cat "$UP/version" 2>&1)"
# The scripts source util.sh from their own directory.
cp "$UP"/*.sh "$WORK/units/"

ln -s /usr/bin/extmerge "$AS_SYSTEMD/systemd-sysext"
ln -s /usr/bin/extmerge "$AS_SYSTEMD/systemd-confext"
check_eq "with extmerge's directory first in PATH, systemd-sysext is extmerge" \
    "$AS_SYSTEMD/systemd-sysext" "$(PATH=$AS_SYSTEMD:$PATH command -v systemd-sysext)"

# sysext_block DESC OUT: the script of sysext.sh's case whose description starts with DESC.
sysext_block() {
    awk -v want="$1" '
    BEGIN { st = "prologue"; found = 0 }
    st == "prologue" { print; if ($0 == "run_sysext_tests() {") st = "header"; next }
    st == "header" && ($0 == "( init_trap" || $0 ~ /^for [A-Za-z_]+ in .*; do$/) { st = "body" }
    st == "header" { print; next }
    st == "body" && $0 == "( init_trap" { st = "case"; buf = $0 "\n"; n = 0; mine = 0; next }
    st == "body" && $0 ~ /^}/ { st = "calls"; next }
    st == "body" || st == "calls" { next }
    st == "case" && $0 == ")" {
        if (mine) { printf "%s", buf; print "echo reached >&9"; print ")"; found++ }
        st = "body"; next
    }
    st == "case" { if (++n == 1 && index($0, ": \"" want) == 1) mine = 1; buf = buf $0 "\n"; next }
    END {
        if (found != 1) { printf "%d cases start with \"%s\"\n", found, want > "/dev/stderr"; exit 1 }
        print "}"
        print "run_sysext_tests '\'''\''"
    }' "$WORK/units/TEST-50-DISSECT.sysext.sh" >"$2"
}

# reload_manager_steps OUT: util.sh's app-reload image, then dissect.sh's steps that use it.
reload_manager_steps() {
    {
        echo 'set -eux'
        echo 'set -o pipefail'
        awk '/^[[:space:]]*initdir="\/var\/tmp\/app-reload"$/ { on = 1 }
            on { print }
            on && /mksquashfs "\$initdir" \/tmp\/app-reload\.raw -noappend/ { exit }' \
            "$WORK/units/util.sh"
        awk '/^# Test that systemd-sysext reloads the daemon\.$/ { on = 1 }
            on { print }
            on && /^rm \/var\/lib\/extensions\/app-reload\.raw$/ { exit }' \
            "$WORK/units/TEST-50-DISSECT.dissect.sh"
        echo 'echo reached >&9'
    } >"$1"
    grep -q 'mksquashfs "$initdir" /tmp/app-reload.raw' "$1" &&
        grep -qx 'rm /var/lib/extensions/app-reload.raw' "$1" &&
        grep -qx 'systemd-sysext merge --no-reload' "$1"
}

# run_block NAME TOOL SCRIPT: run SCRIPT (in the units directory) with TOOL (systemd or
# extmerge) as systemd-sysext; ok when it exits 0 having reached its end.
run_block() {
    local name=$1 tool=$2 script=$3 log=$WORK/logs/$1.$2.log reached=$WORK/logs/$1.$2.reached rc=0
    local path=$PATH
    [[ $tool == extmerge ]] && path=$AS_SYSTEMD:$PATH
    : >"$reached"
    since=$(date +%s)
    (cd "$WORK/units" && env -u JOURNAL_STREAM EXTMERGE_LOG=debug PATH="$path" timeout 90 bash "$script" \
        >"$log" 2>&1 9>"$reached") || rc=$?
    if ((rc == 0)) && grep -qx reached "$reached"; then
        ok "$name with $tool as systemd-sysext"
    elif ((rc == 0)); then
        not_ok "$name with $tool as systemd-sysext: exited 0 without reaching its end (ran nothing)"
    else
        not_ok "$name with $tool as systemd-sysext: exit status $rc; last lines: $(grep -v '^+' "$log" | tail -n 4 | tr '\n' ' ')"
        tail -n 40 "$log" | diag
        echo "--- PID 1 meanwhile:" | diag
        journalctl -b --no-pager -o short-monotonic _PID=1 --since "@$since" | tail -n 40 | diag
    fi
    # A block that failed half-way may leave /usr merged: the next one must start clean.
    if [[ -n $(findmnt -n -o FSTYPE --mountpoint /usr) ]]; then
        echo "$name with $tool left /usr merged: unmerging it" | diag
        systemd-sysext unmerge --no-reload 2>&1 | diag
    fi
}

# count LOG TEXT: lines of extmerge's log that are the info message TEXT.
count() { grep -c -x -F -e " INFO $2" -e "INFO $2" "$1"; }

declare -A DESC=(
    [restart-units]="Check EXTENSION_RESTART_UNITS="
    [reload-or-restart-units]="Check EXTENSION_RELOAD_OR_RESTART_UNITS="
)
for name in restart-units reload-or-restart-units; do
    script=$WORK/units/extmerge-$name.sh
    if ! err=$(sysext_block "${DESC[$name]}" "$script" 2>&1); then
        not_ok "sysext.sh has exactly one case \"${DESC[$name]}…\": $err"
        continue
    fi
    ok "sysext.sh has exactly one case \"${DESC[$name]}…\""
    # systemd's own run of the same script is left out: with it the boot exceeds the harness's
    # 240 s under TCG (the chroot layer and upstream's CI run these blocks with systemd).
    run_block "$name" extmerge "$script"
done

# What extmerge itself said it did (its log; systemd's own binary logs none of this).
log=$WORK/logs/restart-units.extmerge.log
check_eq "extmerge reloaded PID 1 over its private socket (merge, refresh, unmerge: 3 times)" 3 \
    "$(count "$log" "Reloaded the service manager (over PID 1's private socket).")"
check_eq "extmerge restarted test-restart-host.service (merge, refresh, unmerge)" 3 \
    "$(count "$log" "Restarted unit 'test-restart-host.service'.")"
check_eq "extmerge restarted (started) test-restart-ext.service (merge, refresh)" 2 \
    "$(count "$log" "Restarted unit 'test-restart-ext.service'.")"
check_eq "extmerge stopped test-restart-ext.service once its unit file was gone (unmerge)" 1 \
    "$(count "$log" "Stopped unit 'test-restart-ext.service', whose unit file is gone.")"
log=$WORK/logs/reload-or-restart-units.extmerge.log
check_eq "extmerge reloaded or restarted test-reload-or-restart-host.service (merge, refresh, unmerge)" 3 \
    "$(count "$log" "Reloaded or restarted unit 'test-reload-or-restart-host.service'.")"
check_eq "extmerge stopped test-reload-or-restart-ext.service once its unit file was gone" 1 \
    "$(count "$log" "Stopped unit 'test-reload-or-restart-ext.service', whose unit file is gone.")"

script=$WORK/units/extmerge-reload-manager.sh
if reload_manager_steps "$script"; then
    ok "util.sh and dissect.sh have the app-reload image and its EXTENSION_RELOAD_MANAGER= steps"
    run_block reload-manager extmerge "$script"
    check_eq "extmerge reloaded PID 1 for app-reload (merge, then merge + unmerge)" 3 \
        "$(count "$WORK/logs/reload-manager.extmerge.log" \
            "Reloaded the service manager (over PID 1's private socket).")"
else
    not_ok "util.sh and dissect.sh have the app-reload image and its EXTENSION_RELOAD_MANAGER= steps"
fi
check_eq "nothing is left merged on /usr" "" "$(findmnt -n -o FSTYPE --mountpoint /usr)"
finish
