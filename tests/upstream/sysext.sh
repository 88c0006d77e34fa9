#!/usr/bin/env bash
# Upstream's own sysext test, block by block, with systemd 262 and with extmerge.
#
# Usage: tests/upstream/sysext.sh CHROOT EXTMERGE_BINARY OUTDIR
#   CHROOT           the Debian unstable tree of scripts/mkchroot.sh (with systemd-tests and jq)
#   EXTMERGE_BINARY  the extmerge build to install as systemd-sysext/systemd-confext
#   OUTDIR           emptied, then receives blocks/ (the generated scripts), logs/ and summary.txt
# Environment: UPSTREAM_JOBS (parallel runs, default 2), UPSTREAM_ONLY (an extended regex: run
# only the blocks whose name matches; for debugging, the gate then covers only those).
#
# Prints one line per block, `PASS|FAIL|SKIP name (systemd: …, extmerge: …)`, and the total
# `extmerge N/M, systemd K/M` (M: blocks not skipped). Exits 1 when a block passes with systemd
# but not with extmerge and is not in tests/upstream/deliberate-differences.txt, when a listed
# block passes with extmerge after all (the list must stay exact), or when systemd itself fails
# a block (then this environment, not extmerge, is what is broken).
#
# The test: systemd-tests ships upstream's test/units/ in
# /usr/lib/systemd/tests/testdata/units/. TEST-50-DISSECT.sysext.sh defines helpers, then a
# function run_sysext_tests ROOTS_DIR whose body is a list of test cases, and calls it twice:
# with '' (every case on /, when /usr is writable) and with "$FAKE_ROOTS_DIR" (every case on
# its own directory below it, passed as --root=). After that, one more case runs on / at the
# top level (mount points carried over into the overlay).
#
# Splitting rule (checked: anything the rule does not cover stops the run, nothing is dropped):
# - the prologue is every line before `run_sysext_tests() {`; the function header is that line
#   up to the first case (`local roots_dir=${1}; shift`);
# - in the function body, a case is a line `( init_trap` at column 0 up to the next line `)` at
#   column 0 (upstream's formatting of its test-case subshells; nested subshells are indented
#   or on one line), or a `for VAR in WORDS; do` … `done` at column 0 around one indented
#   `( init_trap … )`, which becomes one case per WORD (`for VAR in WORD; do`); any other line
#   of the body must be blank or a comment;
# - the function ends at `}` at column 0; the call section after it ends with the line
#   `run_sysext_tests "$FAKE_ROOTS_DIR"`; the rest, up to its last line `exit 0`, is the
#   top-level case.
# Each case runs in both variants (on / and with --root=), each variant once per tool, as
# prologue + header + case + `}` + the call section with the other variant's call replaced by
# `:`. The top-level case runs on / only, as prologue + its own lines.
#
# "Ran nothing" is detected with a marker: the line `echo reached >&9` is inserted as the last
# command of every case (before its closing `)`, or before the final `exit 0`). A case exits 0
# early to skip itself (`exit 0` in a subshell); exiting 0 without the marker is reported as
# SKIP with the command before that `exit 0`, never as a pass. The only other lines added are an
# ERR trap after the prologue, which writes failing commands to fd 8 for the report.
#
# Cases that need what this environment lacks are skipped without running, from their text:
# - dm-verity images (prepare_extension_image_raw_verity, install_extension_images,
#   veritysetup) when the host kernel has no device-mapper;
# - systemctl: the chroot has no booted service manager.
# These run in the QEMU guest instead: scenarios upstream_verity (dm-verity) and reload_units
# (systemctl).
#
# Each run is isolated: the chroot is copied once into a subvolume of a loop-mounted btrfs
# (base-systemd; base-extmerge is a snapshot of it with extmerge copied over
# /usr/bin/systemd-sysext, which /usr/bin/systemd-confext links to: argv[0] selects the class),
# and every run gets its own snapshot of its base as /, inside its own mount and PID namespace,
# with /proc, /sys, /dev, a tmpfs /run and /tmp, and / shared like on a booted system. Nothing
# it does reaches the chroot, another run or the host, and the namespace takes every mount and
# process with it.
set -euo pipefail

die() { echo "upstream-sysext: error: $*" >&2; exit 2; }

[[ $# -eq 3 ]] || die "usage: $0 CHROOT EXTMERGE_BINARY OUTDIR"
[[ $(id -u) -eq 0 ]] || die "must run as root (mount namespaces, loop devices, chroot)"

# Everything mounted below (the btrfs) lives in a private mount namespace of its own.
if [[ ${UPSTREAM_SYSEXT_IN_NS:-} != 1 ]]; then
    UPSTREAM_SYSEXT_IN_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHROOT=$(readlink -f "$1")
EXTMERGE=$(readlink -f "$2")
OUT=$3
JOBS=${UPSTREAM_JOBS:-2}
ONLY=${UPSTREAM_ONLY:-}
DIFFS=$HERE/deliberate-differences.txt
UNITS_DIR=usr/lib/systemd/tests/testdata/units
UPSTREAM=$CHROOT/$UNITS_DIR/TEST-50-DISSECT.sysext.sh
# Where each generated script is placed in its run's root: next to util.sh, which it sources.
BLOCK_IN_ROOT=/$UNITS_DIR/extmerge-upstream-block.sh

[[ -f $UPSTREAM ]] || die "$UPSTREAM is missing: the chroot lacks systemd-tests (run make chroot)"
[[ -x $CHROOT/usr/bin/jq ]] || die "jq is missing in $CHROOT (run make chroot)"
[[ -x $EXTMERGE ]] || die "$EXTMERGE is not an executable"
[[ -f $DIFFS ]] || die "$DIFFS is missing"
for tool in btrfs mkfs.btrfs unshare timeout chroot awk; do
    command -v "$tool" >/dev/null || die "$tool missing: run scripts/install-deps.sh"
done
# shellcheck disable=SC2016 # dpkg-query's format
sd_version=$(chroot "$CHROOT" dpkg-query -W -f='${Version}' systemd)
# shellcheck disable=SC2016
tests_version=$(chroot "$CHROOT" dpkg-query -W -f='${Version}' systemd-tests)
[[ $sd_version == "$tests_version" ]] ||
    die "systemd $sd_version but systemd-tests $tests_version in $CHROOT: the test must match the binaries"

rm -rf --one-file-system "$OUT"
mkdir -p "$OUT/blocks" "$OUT/logs" "$OUT/results" "$OUT/parts"
OUT=$(readlink -f "$OUT")

# --- split -------------------------------------------------------------------------------------
# Writes parts/prologue, parts/header, parts/calls, per case N (from 1; the last one is the
# top-level case) parts/case-N and parts/case-N.name, and parts/count; stops with a message on
# anything the rule does not cover.
awk -v out="$OUT/parts" '
function fail(msg) { printf "split: line %d: %s\n", NR, msg > "/dev/stderr"; failed = 1; exit 2 }
# A name from a sentence: lowercase words joined by "-", whole words up to 60 characters.
function slug(s,    t) {
    t = tolower(s); gsub(/[^a-z0-9]+/, "-", t); gsub(/^-+|-+$/, "", t)
    if (length(t) > 60) { t = substr(t, 1, 61); sub(/-[^-]*$/, "", t) }
    return t
}
# A case name: the directory of its fake root, else its description.
function case_name(text, word, var,    n, d) {
    if (match(text, /\$roots_dir\/[^"\n]+"/)) {
        n = substr(text, RSTART + 11, RLENGTH - 12)
        if (var != "") { gsub("\\$\\{?" var "\\}?", word, n) }
        return n
    }
    if (match(text, /\n[ \t]*: "[^"\n]*"/)) {
        d = substr(text, RSTART, RLENGTH); sub(/^\n[ \t]*: "/, "", d); sub(/"$/, "", d)
        if (var != "") { gsub("\\$\\{?" var "\\}?", word, d) }
        return slug(d)
    }
    fail("case without a fake root name or a description")
}
function emit(text, name) {
    ncase++
    printf "%s", text > (out "/case-" ncase); close(out "/case-" ncase)
    print name > (out "/case-" ncase ".name"); close(out "/case-" ncase ".name")
}
BEGIN { state = "prologue"; marker = "echo reached >&9 # extmerge: the case reached its end" }
state == "prologue" {
    if ($0 == "run_sysext_tests() {") { state = "header"; print > (out "/header"); next }
    print > (out "/prologue"); next
}
state == "header" {
    if ($0 == "( init_trap" || $0 ~ /^for [A-Za-z_]+ in .*; do$/) { state = "body" }
    else { print > (out "/header"); next }
}
state == "body" {
    if ($0 == "( init_trap") { state = "case"; text = $0 "\n"; next }
    if ($0 ~ /^for [A-Za-z_]+ in .*; do$/) { state = "loop"; loophead = $0; text = ""; next }
    if ($0 ~ /^}/) { state = "calls"; next }
    if ($0 ~ /^[ \t]*(#.*)?$/) { next }
    fail("code between cases that the splitting rule does not cover: " $0)
}
state == "case" {
    if ($0 == ")") { emit(text marker "\n)\n", case_name(text, "", "")); state = "body"; next }
    text = text $0 "\n"; next
}
state == "loop" {
    if ($0 == "done") {
        # The body must be one subshell: its last line closes it; the marker goes before it.
        n = split(text, lines, "\n")
        if (lines[1] !~ /^[ \t]+\( init_trap$/ || lines[n - 1] !~ /^[ \t]+\)$/) fail("for loop whose body is not one test-case subshell")
        body = ""
        for (i = 1; i < n - 1; i++) body = body lines[i] "\n"
        split(loophead, h, " "); var = h[2]
        words = loophead; sub(/^for [A-Za-z_]+ in /, "", words); sub(/; do$/, "", words)
        nw = split(words, w, " ")
        for (i = 1; i <= nw; i++) {
            emit("for " var " in " w[i] "; do\n" body "    " marker "\n" lines[n - 1] "\ndone\n", case_name(body, w[i], var))
        }
        state = "body"; next
    }
    text = text $0 "\n"; next
}
state == "calls" {
    print > (out "/calls")
    if ($0 == "run_sysext_tests \"$FAKE_ROOTS_DIR\"") { state = "tail" }
    next
}
state == "tail" { tail[++ntail] = $0 }
END {
    if (failed) exit 2
    if (state != "tail") { print "split: the call run_sysext_tests \"$FAKE_ROOTS_DIR\" was not found" > "/dev/stderr"; exit 2 }
    last = ntail; while (last > 0 && tail[last] ~ /^[ \t]*$/) last--
    if (last == 0 || tail[last] != "exit 0") { print "split: the top-level case does not end with exit 0" > "/dev/stderr"; exit 2 }
    t = ""
    for (i = 1; i < last; i++) t = t tail[i] "\n"
    t = t marker "\nexit 0\n"
    ncase++
    printf "%s", t > (out "/case-" ncase); close(out "/case-" ncase)
    # The top-level case has no description line: its first comment names it.
    for (i = 1; i < last; i++) if (tail[i] ~ /^# /) { nm = tail[i]; sub(/^# /, "", nm); break }
    if (nm == "") { print "split: the top-level case has no comment to name it" > "/dev/stderr"; exit 2 }
    print slug(nm) > (out "/case-" ncase ".name")
    print ncase > (out "/count")
}
' "$UPSTREAM" || die "cannot split $UPSTREAM (see the message above)"

grep -qxF "    run_sysext_tests ''" "$OUT/parts/calls" || die "the call on / (run_sysext_tests '') was not found"
ncase=$(<"$OUT/parts/count")

# The generated scripts: blocks/<key>.sh (key = NNN-slash or NNN-root), in upstream's order:
# every case on /, then every case with --root=, then the top-level case.
# For the report only, after the prologue: an ERR trap (inherited by functions and subshells)
# writes each failing command to fd 8. set -e decides what fails, as before.
ERR_TRAP=$(cat <<'EOF'
extmerge_nl=$'\n'; set -o errtrace # extmerge: report each failing command on fd 8
trap 'printf "line %s: %.160s (exit %s)\n" "$LINENO" "${BASH_COMMAND//$extmerge_nl/ }" "$?" >&8' ERR
EOF
)
keys=()
declare -A NAME CASE_TEXT
for variant in slash root; do
    for ((i = 1; i < ncase; i++)); do
        key=$(printf '%03d-%s' "$i" "$variant")
        if [[ $variant == slash ]]; then
            NAME[$key]="$(<"$OUT/parts/case-$i.name")@/"
            calls=$(sed 's/^\(.*\)run_sysext_tests "\$FAKE_ROOTS_DIR"$/\1:/' "$OUT/parts/calls")
        else
            NAME[$key]="$(<"$OUT/parts/case-$i.name")@root"
            calls=$(sed "s/^\\(.*\\)run_sysext_tests ''\$/\\1:/" "$OUT/parts/calls")
        fi
        {
            cat "$OUT/parts/prologue"
            echo "$ERR_TRAP"
            cat "$OUT/parts/header" "$OUT/parts/case-$i"
            echo "}"
            echo "$calls"
        } >"$OUT/blocks/$key.sh"
        CASE_TEXT[$key]=$OUT/parts/case-$i
        keys+=("$key")
    done
done
key=$(printf '%03d-slash' "$ncase")
NAME[$key]="$(<"$OUT/parts/case-$ncase.name")@/"
{
    cat "$OUT/parts/prologue"
    echo "$ERR_TRAP"
    cat "$OUT/parts/case-$ncase"
} >"$OUT/blocks/$key.sh"
CASE_TEXT[$key]=$OUT/parts/case-$ncase
keys+=("$key")
declare -A seen_name
for key in "${keys[@]}"; do
    [[ -z ${seen_name[${NAME[$key]}]:-} ]] || die "two blocks named ${NAME[$key]}: the naming rule needs a look"
    seen_name[${NAME[$key]}]=1
    echo "${NAME[$key]}" >"$OUT/blocks/$key.name"
done

# --- deliberate differences -------------------------------------------------------------------
# Lines are `TITLE | BLOCKS | TESTS` (the file's header says more); only BLOCKS matter here.
declare -A DELIBERATE
while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*(#|$) ]] && continue
    IFS='|' read -r title blocks _tests <<<"$line"
    title=${title#"${title%%[![:space:]]*}"}
    title=${title%"${title##*[![:space:]]}"}
    blocks=${blocks//[[:space:]]/}
    [[ -n $title && -n $blocks ]] || die "$DIFFS: malformed line: $line"
    [[ $blocks == - ]] && continue
    IFS=',' read -ra names <<<"$blocks"
    for name in "${names[@]}"; do
        [[ -n ${seen_name[$name]:-} ]] || die "$DIFFS: '$name' is not a block of $UPSTREAM"
        DELIBERATE[$name]=$title
    done
done <"$DIFFS"

# --- what a block needs that this environment lacks ---------------------------------------------
# Whether the kernel has device-mapper, loaded or loadable (as src/image/dmverity.rs decides). Not
# /dev/mapper/control: libdevmapper creates that node in the shared /dev even without the driver.
have_dm() {
    local mods=/lib/modules/$(uname -r)
    grep -qE ' device-mapper$' /proc/misc /proc/devices 2>/dev/null ||
        grep -qE '/dm[-_]mod\.ko' "$mods/modules.dep" "$mods/modules.builtin" 2>/dev/null
}
HAVE_DM=0
have_dm && HAVE_DM=1

# From the case's own lines (the helpers in the prologue are shared by all).
needs_reason() {
    local f=$1
    if [[ $HAVE_DM == 0 ]] &&
        grep -qE 'prepare_extension_image_raw_verity|install_extension_images|veritysetup' "$f"; then
        echo "needs device-mapper (dm-verity image), the host has none"
    elif grep -qE '(^|[[:space:]$(])systemctl ' "$f"; then
        echo "needs a booted systemd (systemctl), the chroot has none"
    fi
}

# --- the roots --------------------------------------------------------------------------------
MNT=$OUT/btrfs
IMG=$OUT/roots.btrfs
cleanup() {
    umount -R "$MNT" 2>/dev/null || umount -R -l "$MNT" 2>/dev/null || true
    rm -f "$IMG"
}
trap cleanup EXIT
t0=$SECONDS
truncate -s 8G "$IMG"
mkfs.btrfs -q -f "$IMG" >/dev/null
mkdir -p "$MNT"
mount -o loop "$IMG" "$MNT"
btrfs subvolume create "$MNT/base-systemd" >/dev/null
cp -a --one-file-system "$CHROOT/." "$MNT/base-systemd/"
btrfs subvolume snapshot "$MNT/base-systemd" "$MNT/base-extmerge" >/dev/null
cp "$EXTMERGE" "$MNT/base-extmerge/usr/bin/systemd-sysext"
[[ $(readlink "$MNT/base-extmerge/usr/bin/systemd-confext") == systemd-sysext ]] ||
    die "systemd-confext in the chroot is not a link to systemd-sysext: install extmerge under both names"
# Each base must run the tool it is named after, as the blocks call it (by name, through PATH).
for tool in systemd extmerge; do
    v=$(chroot "$MNT/base-$tool" /usr/bin/env -i PATH=/usr/sbin:/usr/bin systemd-sysext --version | head -n1)
    [[ $v == "$tool "* ]] || die "systemd-sysext in base-$tool is not $tool: '$v'"
done
echo "upstream-sysext: roots ready in $((SECONDS - t0)) s (systemd $sd_version, $UPSTREAM)"

# One run: KEY TOOL. Writes results/KEY.TOOL = "RC REACHED SECONDS" and logs/KEY.TOOL.log.
run_one() {
    local key=$1 tool=$2 root rc start reached
    root=$MNT/run-$key-$tool
    btrfs subvolume snapshot "$MNT/base-$tool" "$root" >/dev/null
    cp "$OUT/blocks/$key.sh" "$root$BLOCK_IN_ROOT"
    start=$SECONDS
    rc=0
    # shellcheck disable=SC2016 # expanded by the inner shell
    timeout -k 10 600 unshare --fork --pid --kill-child --mount --propagation private -- /bin/sh -euc '
        root=$1 script=$2
        mount --bind "$root" "$root"
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mount -t tmpfs -o mode=0755 tmpfs "$root/run"
        mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
        mount --make-rshared "$root"
        exec chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin \
            HOME=/root LANG=C.UTF-8 SYSTEMD_LOG_LEVEL=debug EXTMERGE_LOG=debug \
            /usr/bin/bash "$script"
    ' sh "$root" "$BLOCK_IN_ROOT" 9>"$OUT/results/$key.$tool.marker" 8>"$OUT/results/$key.$tool.err" >"$OUT/logs/$key.$tool.log" 2>&1 || rc=$?
    reached=0
    grep -qx reached "$OUT/results/$key.$tool.marker" && reached=1
    echo "$rc $reached $((SECONDS - start))" >"$OUT/results/$key.$tool"
}

selected=()
declare -A NEEDS
for key in "${keys[@]}"; do
    [[ -z $ONLY || ${NAME[$key]} =~ $ONLY ]] || continue
    selected+=("$key")
    NEEDS[$key]=$(needs_reason "${CASE_TEXT[$key]}")
done
[[ ${#selected[@]} -gt 0 ]] || die "no block matches UPSTREAM_ONLY='$ONLY'"

t0=$SECONDS
for key in "${selected[@]}"; do
    [[ -z ${NEEDS[$key]} ]] || continue
    for tool in systemd extmerge; do
        while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || true; done
        run_one "$key" "$tool" &
    done
done
wait
run_time=$((SECONDS - t0))

# --- report -----------------------------------------------------------------------------------
# A run's outcome: PASS, FAIL (exit N), or NOTHING (exit 0 before the marker).
outcome() {
    local rc reached secs
    read -r rc reached secs <"$OUT/results/$1.$2"
    if [[ $rc -eq 0 && $reached -eq 1 ]]; then echo PASS
    elif [[ $rc -eq 0 ]]; then echo NOTHING
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then echo "FAIL (timed out)"
    else echo "FAIL (exit $rc)"
    fi
}
# Why a run ended early: the traced command before its last `exit 0`.
early_exit_reason() {
    local log=$1
    awk '/^\++ exit 0$/ { found = prev } /^\+/ { prev = $0 } END { print found }' "$log" |
        sed 's/^+* //; s/^/exit 0 after: /'
}

total=0 ok_ext=0 ok_sd=0 skipped=0
regressions=() stale=() sd_failures=()
{
    for key in "${selected[@]}"; do
        name=${NAME[$key]}
        if [[ -n ${NEEDS[$key]} ]]; then
            echo "SKIP $name (systemd: not run, extmerge: not run: ${NEEDS[$key]})"
            skipped=$((skipped + 1))
            continue
        fi
        sd=$(outcome "$key" systemd)
        ext=$(outcome "$key" extmerge)
        if [[ $sd == NOTHING && $ext == NOTHING ]]; then
            echo "SKIP $name (systemd: ran nothing, extmerge: ran nothing: $(early_exit_reason "$OUT/logs/$key.systemd.log"))"
            skipped=$((skipped + 1))
            continue
        fi
        [[ $sd == NOTHING ]] && sd="FAIL (ran nothing)"
        [[ $ext == NOTHING ]] && ext="FAIL (ran nothing)"
        total=$((total + 1))
        [[ $sd == PASS ]] && ok_sd=$((ok_sd + 1))
        [[ $ext == PASS ]] && ok_ext=$((ok_ext + 1))
        note=""
        if [[ -n ${DELIBERATE[$name]:-} ]]; then
            if [[ $ext == PASS ]]; then
                note=" [listed as a deliberate difference but passes: remove it from the list]"
                stale+=("$name")
            else
                note=" [deliberate difference: ${DELIBERATE[$name]}]"
            fi
        elif [[ $sd == PASS && $ext != PASS ]]; then
            note=" [regression: passes with systemd]"
            regressions+=("$name")
        fi
        [[ $sd == PASS ]] || sd_failures+=("$name")
        verdict=PASS
        [[ $ext == PASS ]] || verdict=FAIL
        echo "$verdict $name (systemd: $sd, extmerge: $ext)$note"
    done
    echo "extmerge $ok_ext/$total, systemd $ok_sd/$total ($skipped skipped; $((run_time / 60)) min $((run_time % 60)) s with $JOBS jobs)"
} >"$OUT/summary.txt"
cat "$OUT/summary.txt"

# The details a reader needs for each failure: the end of the run's trace.
key_of() { local k; for k in "${selected[@]}"; do [[ ${NAME[$k]} == "$1" ]] && echo "$k"; done; }
show_log() {
    local key=$1 tool=$2
    echo "--- $tool, ${NAME[$key]} (script: $OUT/blocks/$key.sh, log: $OUT/logs/$key.$tool.log)"
    echo "failing commands as the ERR trap saw them, in order: the failure is the last one before the"
    echo "functions and subshells around it (earlier ones can be expected failures such as (! touch …)):"
    grep -v '^line [0-9]*: ( init_trap' "$OUT/results/$key.$tool.err" | tail -n 6 | sed 's/^/  /'
    echo "log lines other than the trace, last 15:"
    grep -v '^+' "$OUT/logs/$key.$tool.log" | tail -n 15 | sed 's/^/  /'
}
for name in "${regressions[@]}"; do show_log "$(key_of "$name")" extmerge; done
for name in "${sd_failures[@]}"; do show_log "$(key_of "$name")" systemd; done

status=0
if [[ $total -eq 0 ]]; then
    echo "upstream-sysext: no block ran"
    status=1
fi
if [[ ${#regressions[@]} -gt 0 ]]; then
    echo "upstream-sysext: ${#regressions[@]} block(s) pass with systemd $sd_version but fail with extmerge: ${regressions[*]}"
    status=1
fi
if [[ ${#stale[@]} -gt 0 ]]; then
    echo "upstream-sysext: listed in $DIFFS but passing with extmerge: ${stale[*]}"
    status=1
fi
if [[ ${#sd_failures[@]} -gt 0 ]]; then
    echo "upstream-sysext: systemd $sd_version itself fails ${sd_failures[*]}: this environment differs from upstream's"
    status=1
fi
exit $status
