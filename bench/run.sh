#!/usr/bin/env bash
# Benchmark extmerge against systemd-sysext/systemd-confext 262 from the Debian unstable chroot
# and write docs/benchmarks.md (`make bench`; not part of `make test`).
#
# Usage: bench/run.sh [--quick]
#   --quick   1 repetition of the 1- and 10-extension sets, 10 forced refreshes and 2 rounds of
#             the 100,000-file directory section; writes
#             target/bench/benchmarks-quick.md instead of docs/benchmarks.md (for trying changes;
#             results-quick.json and run-quick/logs, so the full run's files stay)
#   BENCH_BIN=FILE  benchmark this extmerge binary instead of the `make static` one (e.g. a
#             candidate fix built elsewhere); the report names it
#   BENCH_SETS=N:REPS,...  BENCH_GAP_REFRESHES=K  other sets and forced refreshes (e.g. on a
#             machine too busy for the full run); the report says which ran
#   BENCH_BIG=TREES:REPS  the directory section: how many of the 5,000-file trees (at most 20)
#             and rounds of unchanged refreshes per conflict policy (0:0 skips it)
#
# Needs root, `make static` (the binary below) and `make chroot`; `make bench` does both.
# Everything that mounts runs in one private mount namespace (bench/bench.py under
# `unshare -m --propagation private`), so its mounts vanish with it; the loop devices are
# autoclear ones. Before and after, this script checks that no loop device backed by a bench
# file and no mount below the chroot is left in the host namespace.
# Caches: the image pool in target/bench/pool (rebuilt when bench/images.py's recipe changes).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$REPO/target/bench
CHROOT=$REPO/target/chroot/unstable
BIN=${BENCH_BIN:-$REPO/target/x86_64-unknown-linux-gnu/release/extmerge}
BIN=$(realpath -m "$BIN")
DOC=$REPO/docs/benchmarks.md
RESULTS=$OUT/results.json
WORK=$OUT/run
SETS=${BENCH_SETS:-1:7,10:7,20:5,50:5,200:3}
GAP_SET=10
GAP_REFRESHES=${BENCH_GAP_REFRESHES:-200}
BIG=${BENCH_BIG:-20:7}

die() { echo "bench: error: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

if [[ ${1:-} == --quick ]]; then
    SETS=1:1,10:1
    GAP_REFRESHES=10
    BIG=${BENCH_BIG:-20:2}
    DOC=$OUT/benchmarks-quick.md
    RESULTS=$OUT/results-quick.json
    WORK=$OUT/run-quick
elif [[ $# -gt 0 ]]; then
    die "usage: bench/run.sh [--quick]"
fi

[[ $BIG =~ ^([0-9]+):[0-9]+$ ]] && ((BASH_REMATCH[1] <= 20)) ||
    die "BENCH_BIG=$BIG: want TREES:REPS with at most 20 trees"
[[ $(id -u) -eq 0 ]] || die "must run as root (mount namespaces, loop devices, chroot)"
[[ -x $BIN ]] || die "$BIN missing: run make static"
[[ -f $CHROOT/.extmerge-ready && -x $CHROOT/usr/bin/systemd-sysext ]] ||
    die "the chroot is missing: run make chroot"
for c in python3 gcc unshare mksquashfs mkfs.erofs losetup file; do
    command -v "$c" >/dev/null 2>&1 || die "$c missing: run scripts/install-deps.sh"
done

mkdir -p "$OUT"
# Loop devices whose backing file is a bench image. The recorded name is the path the tool
# used, seen from inside the chroot (e.g. /var/lib/extensions/bench-000.raw): match the names.
bench_loops() {
    losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null |
        awk '$2 ~ /\/(bench-[0-9][0-9][0-9]|bench-conf)\.raw( \(deleted\))?$/ {print $1}' || true
}
# Mounts in this (the host's) namespace at or below the chroot or the bench directory.
bench_mounts() {
    awk -v c="$CHROOT" -v o="$OUT" '$5 == c || index($5, c "/") == 1 || index($5, o "/") == 1 {print $5}' \
        /proc/self/mountinfo
}

[[ -z $(bench_loops) ]] || die "loop devices backed by bench files exist before the run: $(bench_loops | tr '\n' ' ')"
[[ -z $(bench_mounts) ]] || die "mounts below $CHROOT or $OUT exist before the run: $(bench_mounts | tr '\n' ' ')"

cleanup() {
    local rc=$? loops
    # Autoclear loop devices go away once the namespace's mounts are gone; give that a moment.
    for _ in $(seq 50); do
        loops=$(bench_loops)
        [[ -z $loops ]] && break
        sleep 0.2
    done
    if [[ -n $loops ]]; then
        echo "bench: error: loop devices left behind, detaching: $loops" >&2
        for l in $loops; do losetup -d "$l" || true; done
        rc=1
    fi
    if [[ -n $(bench_mounts) ]]; then
        echo "bench: error: mounts left in the host namespace: $(bench_mounts | tr '\n' ' ')" >&2
        rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT

# Small static helpers (they also run inside the chroot).
for h in reader runner floor walkfloor; do
    if [[ ! -x $OUT/$h || $REPO/bench/$h.c -nt $OUT/$h ]]; then
        gcc -O2 -Wall -Wextra -static -pthread -o "$OUT/$h" "$REPO/bench/$h.c"
    fi
done

python3 "$REPO/bench/images.py" "$OUT/pool"

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "sets $SETS, gap on $GAP_SET extensions with $GAP_REFRESHES forced refreshes, directory section $BIG; load $load_start"
rm -f "$RESULTS"
unshare -m --propagation private python3 "$REPO/bench/bench.py" \
    --chroot "$CHROOT" --bin "$BIN" --reader "$OUT/reader" --runner "$OUT/runner" --floor "$OUT/floor" \
    --walkfloor "$OUT/walkfloor" --pool "$OUT/pool" --work "$WORK" --sets "$SETS" \
    --gap-set "$GAP_SET" --gap-refreshes "$GAP_REFRESHES" --big "$BIG" --json "$RESULTS"
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$(dirname "$DOC")"
python3 "$REPO/bench/report.py" "$RESULTS" "$DOC" --repo "$REPO" --chroot "$CHROOT" \
    --bin "$BIN" --pool "$OUT/pool" --load-start "$load_start" --load-end "$load_end"
log "wrote ${DOC#"$REPO"/}"
