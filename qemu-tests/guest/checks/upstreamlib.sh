# Running upstream's TEST-50-DISSECT.sysext.sh cases one by one in the booted guest, with
# systemd's own systemd-sysext or with extmerge under that name (a symlink in a directory put
# first in PATH). Sourced after checklib.sh by check scripts of scenarios with an
# `upstream-tests` file; upstream_setup must run first.
# shellcheck shell=bash

UP=$EXTMERGE_TEST_DIR/upstream
WORK=/run/extmerge-upstream
AS_SYSTEMD=/run/extmerge-as-systemd

# upstream_setup: the working directory with upstream's scripts, and extmerge as systemd-*ext.
upstream_setup() {
    rm -rf "$WORK" "$AS_SYSTEMD"
    mkdir -p "$WORK/units" "$WORK/logs" "$AS_SYSTEMD"
    local guest_sd
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
}

# sysext_block DESC OUT [VARIANT]: the script of sysext.sh's case whose description starts with
# DESC: the prologue, run_sysext_tests' header, that one case (with a marker on fd 9 as its last
# command), and the call on / (VARIANT slash, the default) or on "$FAKE_ROOTS_DIR" (VARIANT
# root: each case then runs in its own directory below it, passed as --root=).
sysext_block() {
    local call="run_sysext_tests ''"
    [[ ${3:-slash} == root ]] && call='run_sysext_tests "$FAKE_ROOTS_DIR"'
    awk -v want="$1" -v call="$call" '
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
        print call
    }' "$WORK/units/TEST-50-DISSECT.sysext.sh" >"$2"
}

# toplevel_block OUT: the script of sysext.sh's case after both calls of run_sysext_tests (on /
# only: mount points carried over into the overlay): the prologue, then those lines with the
# marker on fd 9 before their final `exit 0`.
toplevel_block() {
    awk '
    BEGIN { st = "prologue" }
    st == "prologue" && $0 == "run_sysext_tests() {" { st = "skip"; next }
    st == "prologue" { print; next }
    st == "skip" { if ($0 == "run_sysext_tests \"$FAKE_ROOTS_DIR\"") st = "tail"; next }
    st == "tail" { line[++n] = $0 }
    END {
        while (n > 0 && line[n] ~ /^[ \t]*$/) n--
        if (st != "tail" || n == 0 || line[n] != "exit 0") {
            print "no top-level case ending with exit 0 after run_sysext_tests \"$FAKE_ROOTS_DIR\"" > "/dev/stderr"; exit 1
        }
        for (i = 1; i < n; i++) print line[i]
        print "echo reached >&9"
        print "exit 0"
    }' "$WORK/units/TEST-50-DISSECT.sysext.sh" >"$1"
}

# run_block NAME TOOL SCRIPT: run SCRIPT (in the units directory) with TOOL (systemd or
# extmerge) as systemd-sysext; ok when it exits 0 having reached its end. Returns 0 on a pass.
run_block() {
    # Names like case@/ hold a slash: the files are named with it replaced.
    local name=$1 tool=$2 script=$3 file=${1//\//slash} rc=0
    local log=$WORK/logs/$file.$tool.log reached=$WORK/logs/$file.$tool.reached
    local path=$PATH since pass=1
    [[ $tool == extmerge ]] && path=$AS_SYSTEMD:$PATH
    : >"$reached"
    since=$(date +%s)
    (cd "$WORK/units" && env -u JOURNAL_STREAM EXTMERGE_LOG=debug PATH="$path" timeout 90 bash "$script" \
        >"$log" 2>&1 9>"$reached") || rc=$?
    if ((rc == 0)) && grep -qx reached "$reached"; then
        ok "$name with $tool as systemd-sysext"
        pass=0
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
    return $pass
}

# log_of NAME TOOL: the output of run_block NAME TOOL.
log_of() { echo "$WORK/logs/${1//\//slash}.$2.log"; }

# count_info LOG ERE: lines of extmerge's log that are an info message matching ERE (whole line).
count_info() { grep -c -E -e "^ ?INFO $2\$" "$1"; }
