#!/usr/bin/env bash
# `make demo`: build the guest (cached), boot it once under QEMU with the sample extensions
# of the "demo" scenario, and print what extmerge merged in the initrd (and how long it
# took) and what systemd-sysext / systemd-confext report in the booted system. The guest
# powers itself off after collecting this.
#
# Usage: qemu-tests/demo.sh
set -euo pipefail
LOG_TAG=demo
# shellcheck source=qemu-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
need_root

mkdir -p "$QEMU_WORK/runs"
runlog=$QEMU_WORK/runs/demo.log
echo "Building the guest (cached after the first run) and booting it under QEMU (TCG)..."
rc=0
"$QT_DIR/run-scenario.sh" demo >"$runlog" 2>&1 || rc=$?
if ((rc != 0)); then
    tail -n 120 "$runlog" >&2
    die "the demo boot failed (full log: $runlog)"
fi
grep -E '^(qemu-guest|qemu-test): .*(ready|built|download|debootstrap|dracut|checks ok)' "$runlog" |
    sed 's/^/  /' || true

# shellcheck source=/dev/null
source "$QEMU_WORK/guest.env"
results=$QEMU_WORK/runs/demo/results-boot-1.log
boot_s=$(sed -n 's/.*demo: boot 1\/1: .* in \([0-9.]*\) s$/\1/p' "$runlog" | tail -n1)
nok=$(tr -d '\r' <"$results" | grep -c '^ok ' || true)
demo_lines() { tr -d '\r' <"$results" | sed -n "s/^demo| $1: \{0,1\}//p"; }

echo
echo "== extmerge demo =="
echo "Guest: Debian unstable (systemd ${SYSTEMD_VERSION:-?}, dracut ${DRACUT_VERSION:-?}), kernel $KVER,"
echo "       QEMU TCG, 1 vCPU; boot, checks and power-off took ${boot_s:-?} s."
echo
echo "In the initrd, extmerge-sysroot-early.service (before Ignition) and extmerge-sysroot.service (journal, seconds since boot):"
demo_lines initrd | sed 's/^/  /'
demo_lines unit | sed 's/^/  /'
echo
echo "In the booted system:"
tr -d '\r' <"$results" | sed -n -e 's/^demo| cmd: /  /p' -e 's/^demo| out: \{0,1\}/    /p'
echo
echo "Checks: $nok ok, 0 failed. The guest has powered off (logs: $QEMU_WORK/runs/demo/)."
