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
. ./upstreamlib.sh

upstream_setup

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
    run_block "$name" extmerge "$script" || :
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
    run_block reload-manager extmerge "$script" || :
    check_eq "extmerge reloaded PID 1 for app-reload (merge, then merge + unmerge)" 3 \
        "$(count "$WORK/logs/reload-manager.extmerge.log" \
            "Reloaded the service manager (over PID 1's private socket).")"
else
    not_ok "util.sh and dissect.sh have the app-reload image and its EXTENSION_RELOAD_MANAGER= steps"
fi
check_eq "nothing is left merged on /usr" "" "$(findmnt -n -o FSTYPE --mountpoint /usr)"
finish
