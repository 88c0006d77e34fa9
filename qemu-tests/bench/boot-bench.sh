#!/usr/bin/env bash
# Boot benchmark (issue 8, point 2): the same QEMU guest (kernel, root disk, 20 sysexts and
# a confext) booted with two initramfs variants that differ only in what merges the
# extensions onto /sysroot:
#
#   extmerge  the initramfs qemu-tests/build-guest.sh makes for the boot tests (its
#             INITRD_ADD: extmerge's module with its units, the test stubs, and dracut's
#             systemd-sysext module, whose units extmerge's module masks)
#   systemd   the same dracut invocation (same drivers, omissions, stubs) without extmerge:
#             systemd 262's systemd-confext-sysroot.service and systemd-sysext-sysroot.service
#             (`systemd-{conf,sys}ext --root=/sysroot refresh`) from dracut-ng's
#             systemd-sysext module, or, when the guest cannot install that module (it needs
#             systemd-veritysetup, from Debian's systemd-cryptsetup package), from a copy of
#             it without that dependency (bench/dracut/95extmerge-bench-sysext)
#
# BENCH_BOOTS rounds; in each, each variant (extmerge first, then systemd) boots a fresh
# copy-on-write overlay of the same disk twice: cold (first boot) and warm (second boot of
# that overlay). In each boot a check script (bench/check-boot-1.sh) verifies that every
# extension was merged in the initrd and reports PID 1's journal timestamps of the merge
# units and its initrd timestamps, extmerge's phase and step lines, and last, three runs in a
# row of the tools' status and unchanged refresh in the booted system (what a first run under
# TCG costs). The summary (medians, min-max, ratios extmerge/systemd, cold and warm) is
# written to docs/boot-benchmark.md.
#
# Usage: qemu-tests/bench/boot-bench.sh     (as root; `make bench-boot`)
# Environment:
#   BENCH_BOOTS=N          rounds, i.e. cold and warm boots per variant (default 3)
#   BENCH_BOOT_TIMEOUT=S   seconds per boot before QEMU is killed (default 240)
#   BENCH_REPORT=FILE      where the report goes (default docs/boot-benchmark.md)
#   EXTMERGE_BIN=PATH      passed to build-guest.sh (skips `make static`)
#   BENCH_GUEST_ENV=FILE   use the guest described by FILE (build-guest.sh's guest.env)
#                          instead of running build-guest.sh (to re-run against a guest
#                          built earlier)
# Everything is cached under target/qemu/bench/ (initramfs variants and the disk image,
# keyed on their inputs); the logs of the last run are in target/qemu/bench/run/.
set -euo pipefail
LOG_TAG=boot-bench
# shellcheck source=qemu-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
BENCH_DIR=$QT_DIR/bench

BOOTS=${BENCH_BOOTS:-3}
BOOT_TIMEOUT=${BENCH_BOOT_TIMEOUT:-240}
REPORT=${BENCH_REPORT:-$REPO/docs/boot-benchmark.md}
[[ $BOOTS =~ ^[1-9][0-9]*$ ]] || die "BENCH_BOOTS must be a positive number (got '$BOOTS')"
((BOOTS >= 3)) || log "warning: BENCH_BOOTS=$BOOTS: fewer than 3 boots per variant; the medians mean little"

# The extensions: 20 sysexts of ~2 MiB (10 squashfs and 6 erofs images in
# /var/lib/extensions, 4 directories in /etc/extensions) and one squashfs confext in
# /var/lib/confexts. Each sysext has /usr/bin/NAME, 16 x 128 KiB of incompressible data
# in /usr/share/NAME/ and /opt/NAME/marker.
N_SQUASHFS=10
N_EROFS=6
N_DIR=4
BENCH_DISK_VERSION=1   # bump when the extensions or their placement change
BENCH_INITRD_VERSION=1 # bump when the dracut invocation below changes
VARIANTS=(extmerge systemd)

need_root
need_cmds qemu-system-x86_64 qemu-img mkfs.ext4 mksquashfs mkfs.erofs timeout flock openssl tar awk python3

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

WORK=$QEMU_WORK/bench
RUN=$WORK/run
mkdir -p "$WORK"
exec 7>"$WORK/.bench.lock"
flock -n 7 || die "another boot benchmark is running (lock $WORK/.bench.lock)"

QEMU_PID=""
cleanup() {
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill -TERM "$QEMU_PID" 2>/dev/null || true
        sleep 1
        kill -KILL "$QEMU_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_all=$(now)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the guest (build-guest.sh: rootfs, kernel, its initramfs and disk, cached) ---------
if [[ -n ${BENCH_GUEST_ENV:-} ]]; then
    guest_env=$(cat "$BENCH_GUEST_ENV")
else
    guest_env=$("$QT_DIR/build-guest.sh")
fi
while IFS='=' read -r k v; do
    case $k in
        KVER | KERNEL | INITRD | BASE | SYSTEMD_VERSION | DRACUT_VERSION) printf -v "$k" '%s' "$v" ;;
    esac
done <<<"$guest_env"
# shellcheck disable=SC2153 # INITRD is set from guest.env just above
for f in "$KERNEL" "$INITRD" "$BASE"; do
    [[ -f $f ]] || die "build-guest.sh left no $f"
done
ROOTFS=$QEMU_WORK/rootfs
rootfs_key=$(sed -n 's/^key=//p' "$ROOTFS/.extmerge-qemu-ready")

# ---- the two initramfs variants -------------------------------------------------------
# The dracut arguments of build-guest.sh's initramfs (INITRD_ADD, INITRD_OMIT,
# INITRD_DRIVERS), read from the script so that both variants stay in step with it.
eval "$(sed -n -e '/^INITRD_ADD=/p' -e '/^INITRD_DRIVERS=/p' -e '/^INITRD_OMIT=/,/"$/p' "$QT_DIR/build-guest.sh")"
[[ -n ${INITRD_DRIVERS:-} && -n ${INITRD_OMIT:-} ]] ||
    die "could not read INITRD_DRIVERS and INITRD_OMIT from $QT_DIR/build-guest.sh"
INITRD_ADD=${INITRD_ADD:-extmerge extmerge-test-stubs} # before build-guest.sh had it
# systemd's merge: dracut's own module when the guest has what it depends on, else ours.
if [[ -x $ROOTFS/usr/lib/systemd/systemd-veritysetup ]]; then
    SYSEXT_MODULE=systemd-sysext
else
    SYSEXT_MODULE=extmerge-bench-sysext
fi
systemd_add=$SYSEXT_MODULE
for m in $INITRD_ADD; do
    case $m in extmerge | systemd-sysext) ;; *) systemd_add+=" $m" ;; esac
done
systemd_omit="$INITRD_OMIT extmerge"

# The systemd variant, made by the guest rootfs's dracut in a private mount namespace under
# build-guest.sh's lock, as build-guest.sh makes its initramfs. bench/dracut/ is added to a
# copy of the guest's dracut directory in the chroot's /tmp (a tmpfs): nothing is written
# into the rootfs. The test stubs are the rootfs's copy, which build-guest.sh keeps current.
systemd_initrd_key() {
    printf '%s\n' "v$BENCH_INITRD_VERSION" "$rootfs_key" "$KVER" "$systemd_add" "$systemd_omit" \
        "$INITRD_DRIVERS" "$(hash_paths "$BENCH_DIR/dracut" "$ROOTFS/usr/lib/dracut/modules.d/91extmerge-test-stubs")" |
        sha256sum | cut -c1-16
}

build_systemd_initrd() {
    local out=$1 dlog t0
    t0=$(now)
    dlog=$WORK/dracut-systemd.log
    log "dracut (in the guest rootfs) for the systemd variant: --add '$systemd_add'"
    (
        flock -w 3600 9 || die "timed out waiting for the guest build lock"
        rm -f "$ROOTFS/var/tmp/initrd-bench.img"
        # shellcheck disable=SC2016 # expanded by the shell in the chroot
        tar -C "$BENCH_DIR/dracut" -cf - . | chroot_run "$ROOTFS" /bin/sh -euc '
            mkdir /tmp/dracut-bench
            cp -a /usr/lib/dracut/. /tmp/dracut-bench/
            tar -C /tmp/dracut-bench/modules.d -xf -
            export dracutbasedir=/tmp/dracut-bench
            exec dracut --force --no-hostonly --no-hostonly-cmdline --kver "$1" \
                --add "$2" --omit "$3" --add-drivers "$4" /var/tmp/initrd-bench.img
        ' sh "$KVER" "$systemd_add" "$systemd_omit" "$INITRD_DRIVERS" >"$dlog" 2>&1 || {
            tail -n 40 "$dlog" >&2
            die "dracut failed for the systemd variant (log: $dlog)"
        }
        mv "$ROOTFS/var/tmp/initrd-bench.img" "$out.tmp"
    ) 9>"$QEMU_WORK/.build.lock"
    mv "$out.tmp" "$out"
    log "initramfs (systemd) ready: $out ($(du -h "$out" | cut -f1)) in $(since "$t0") s"
}

declare -A INITRDS
# A copy: build-guest.sh prunes older initramfs images while other work rebuilds them.
INITRDS[extmerge]=$WORK/initrd-extmerge-${INITRD##*/initrd-}
[[ -f ${INITRDS[extmerge]} ]] || { cp "$INITRD" "${INITRDS[extmerge]}.tmp" && mv "${INITRDS[extmerge]}.tmp" "${INITRDS[extmerge]}"; }
INITRDS[systemd]=$WORK/initrd-systemd-$(systemd_initrd_key).img
[[ -f ${INITRDS[systemd]} ]] || build_systemd_initrd "${INITRDS[systemd]}"
# Older variants (other inputs) are dropped.
for v in "${VARIANTS[@]}"; do
    find "$WORK" -maxdepth 1 -name "initrd-$v-*.img*" ! -name "$(basename "${INITRDS[$v]}")*" -delete
done

# The systemd variant must really hold systemd's merge: its binaries, units and the
# dlopen()ed libraries dissecting an image needs; the extmerge variant must hold ours, and
# systemd's units only masked (lsinitrd, in the guest rootfs).
initrd_list() { # print the path of IMG's lsinitrd listing (made once, kept in target/qemu/bench)
    local img=$1 list
    list=$WORK/$(basename "$1").list
    if [[ ! -s $list ]]; then
        chroot_run "$ROOTFS" /bin/sh -c 'cat >/tmp/i.img && lsinitrd /tmp/i.img' <"$img" >"$list.tmp" ||
            die "lsinitrd $img failed"
        mv "$list.tmp" "$list"
    fi
    echo "$list"
}
find "$WORK" -maxdepth 1 -name 'initrd-*.img.list' -mmin +600 -delete
for f in usr/bin/systemd-sysext usr/bin/systemd-confext systemd-sysext-sysroot.service \
    systemd-confext-sysroot.service initrd.target.wants/systemd-sysext-sysroot.service \
    initrd.target.wants/systemd-confext-sysroot.service libblkid.so.1 libmount.so.1 libcryptsetup.so.12; do
    grep -qF -- "$f" "$(initrd_list "${INITRDS[systemd]}")" || die "the systemd variant's initramfs has no $f"
done
for f in usr/bin/extmerge initrd.target.wants/extmerge-sysroot.service; do
    grep -qF -- "$f" "$(initrd_list "${INITRDS[extmerge]}")" || die "the extmerge variant's initramfs has no $f"
done
for u in systemd-sysext-sysroot.service systemd-confext-sysroot.service; do
    if grep -qF "initrd.target.wants/$u" "$(initrd_list "${INITRDS[extmerge]}")" &&
        ! grep -qF "etc/systemd/system/$u -> /dev/null" "$(initrd_list "${INITRDS[extmerge]}")"; then
        die "the extmerge variant's initramfs also has systemd's $u enabled (not masked)"
    fi
done

# ---- the disk: build-guest.sh's image plus the extensions --------------------------------
ext_names=()
ext_kinds=()
for ((i = 1; i <= N_SQUASHFS + N_EROFS + N_DIR; i++)); do
    ext_names+=("$(printf 'bench-%02d' "$i")")
    if ((i <= N_SQUASHFS)); then
        ext_kinds+=(squashfs)
    elif ((i <= N_SQUASHFS + N_EROFS)); then
        ext_kinds+=(erofs)
    else
        ext_kinds+=(dir)
    fi
done
CONFEXT=bench-conf

# build_disk OUT (and blob, make_sysext_tree): qemu-tests/bench/disk.sh.
# shellcheck source=qemu-tests/bench/disk.sh
source "$BENCH_DIR/disk.sh"

disk_key=$(printf '%s\n' "v$BENCH_DISK_VERSION" "$(basename "$BASE")" "$N_SQUASHFS $N_EROFS $N_DIR" |
    sha256sum | cut -c1-16)
DISK=$WORK/disk-$disk_key.img
if [[ ! -f $DISK ]]; then
    build_disk "$DISK"
    find "$WORK" -maxdepth 1 -name 'disk-*.img*' ! -name "disk-$disk_key.img*" -delete
fi

# ---- the checks disk ---------------------------------------------------------------------
rm -rf --one-file-system "$RUN"
mkdir -p "$RUN/checks"
cp "$QT_DIR/guest/checks/checklib.sh" "$BENCH_DIR/check-boot-1.sh" "$RUN/checks/"
cp "$BENCH_DIR/check-boot-1.sh" "$RUN/checks/check-boot-2.sh"
{
    for i in "${!ext_names[@]}"; do echo "${ext_names[$i]} ${ext_kinds[$i]}"; done
    echo "$CONFEXT confext"
} >"$RUN/checks/bench-extensions"
chown -R 0:0 "$RUN/checks"
truncate -s 16M "$RUN/checks.img"
mkfs.ext4 -q -F -L extmerge-test -d "$RUN/checks" "$RUN/checks.img" || die "mkfs.ext4 of the checks disk failed"

# ---- the boots ---------------------------------------------------------------------------
# Each round boots each variant twice from one fresh overlay of the disk: the first boot
# ("cold": nothing of the variant's on the disk yet, as on a machine's first boot with these
# extensions) and the second boot of the same overlay ("warm": whatever the first boot left,
# as on every later boot).
PHASES=(cold warm)

# boot VARIANT ROUND N: boot N (1 = cold, 2 = warm) of this round's overlay for VARIANT;
# results in $RUN/results-ROUND-VARIANT-PHASE.log.
boot() {
    local variant=$1 i=$2 n=$3 phase=${PHASES[$(($3 - 1))]} cmdline rc t0 raw problem="" tag key
    tag="$i-$variant-$phase" key="$variant/$phase"
    local console=$RUN/console-$tag.log results=$RUN/results-$tag.log
    if ((n == 1)); then
        rm -f "$RUN/root.qcow2"
        qemu-img create -q -f qcow2 -b "$DISK" -F raw "$RUN/root.qcow2"
    fi
    cmdline="root=/dev/vda rw console=ttyS0,115200 panic=1 mitigations=off extmerge_test.boot=$n"
    cmdline+=" extmerge_bench.variant=$variant"
    # extmerge's per-phase timing lines (systemd's tools ignore the variable).
    cmdline+=" systemd.setenv=EXTMERGE_LOG=info,extmerge_phase=debug"
    : >"$console"
    : >"$results"
    t0=$(now)
    rc=0
    timeout -k 10 "$BOOT_TIMEOUT" qemu-system-x86_64 \
        -accel tcg -machine q35 -m 1024 -smp 1 \
        -nodefaults -nographic -no-reboot -monitor none \
        -kernel "$KERNEL" -initrd "${INITRDS[$variant]}" -append "$cmdline" \
        -drive "if=virtio,file=$RUN/root.qcow2,format=qcow2" \
        -drive "if=virtio,file=$RUN/checks.img,format=raw,readonly=on" \
        -serial "file:$console" -serial "file:$results" \
        </dev/null >"$RUN/qemu-$tag.log" 2>&1 &
    QEMU_PID=$!
    wait "$QEMU_PID" || rc=$?
    QEMU_PID=""
    BOOT_SECONDS=$(since "$t0")
    raw=$(tr -d '\r' <"$results")
    if ((rc == 124 || rc == 137)); then
        problem="timed out after $BOOT_TIMEOUT s (QEMU killed)"
    elif ((rc != 0)); then
        problem="QEMU exited with $rc: $(tail -n 5 "$RUN/qemu-$tag.log" | tr '\n' ' ')"
    elif ! grep -qx "end boot $n" <<<"$raw"; then
        problem="the checks did not finish (no 'end boot $n' on the results port)"
    elif grep -q '^not ok' <<<"$raw"; then
        problem="$(grep -c '^not ok' <<<"$raw") check(s) failed"
    elif ! grep -q '^bench merged ' <<<"$raw"; then
        problem="no merge report"
    fi
    if [[ -n $problem ]]; then
        [[ -n $raw ]] && grep -v '^# /dev/loop' <<<"$raw" | sed "s/^/  [$tag] /" >&2
        log "boot $tag FAILED: $problem (${BOOT_SECONDS} s)"
        log "--- last 60 console lines ($console):"
        tr -d '\r' <"$console" | tail -n 60 | sed 's/^/  | /' >&2
        die "a benchmark of a failed merge is worthless: stopping (logs in $RUN)"
    fi
    echo "boot $i $key $BOOT_SECONDS" >>"$RUN/boots"
    sed -n "s|^bench |$i $key |p" <<<"$raw" >>"$RUN/data"
    log "round $i/$BOOTS, $variant, $phase boot: $(grep -c '^ok ' <<<"$raw") checks ok, $(summary_line "$i" "$key") (${BOOT_SECONDS} s)"
}

# Data of boot I of VARIANT, from the "bench ..." lines of check-boot-1.sh in $RUN/data:
#   I VARIANT unit UNIT START_US FINISH_US CPU_NSEC     (PID 1's journal entries)
#   I VARIANT initrd_us US | reached TARGET US | etc_options FSTYPE OPTIONS | ...
# Merge time: the sum of the merge units' times from "Starting" to "Finished" (what
# systemd-analyze blame shows per unit), in microseconds.
merge_us() {
    awk -v i="$1" -v v="$2" '$1 == i && $2 == v && $3 == "unit" { t += $6 - $5; n++ } END { if (n) print t }' "$RUN/data"
}
# From the first merge unit's start to the last one's end.
span_us() {
    awk -v i="$1" -v v="$2" '$1 == i && $2 == v && $3 == "unit" {
        if (s == "" || $5 < s) s = $5; if ($6 > e) e = $6 }
        END { if (s != "") print e - s }' "$RUN/data"
}
# CPU time of the merge units, microseconds: PID 1's CPUUsageNSec of each unit, logged in the
# initrd by the test stubs' extmerge-bench-cpu.service ("cpu" lines). Without those, PID 1's
# "Consumed ... CPU time" entries, which it logs only from 1 s of CPU up
# (MENTIONWORTHY_CPU_NSEC in systemd's src/core/unit.c): a unit without one counts as 0.
cpu_us() {
    awk -v i="$1" -v v="$2" '$1 == i && $2 == v && $3 == "cpu" { c += $5 / 1000; nc++ }
        $1 == i && $2 == v && $3 == "unit" { if ($7 != "-") t += $7 / 1000; n++ }
        END { if (nc) printf "%.0f\n", c; else if (n) printf "%.0f\n", t }' "$RUN/data"
}
initrd_us() { awk -v i="$1" -v v="$2" '$1 == i && $2 == v && $3 == "initrd_us" { print $4 }' "$RUN/data"; }
summary_line() {
    awk -v m="$(merge_us "$1" "$2")" -v c="$(cpu_us "$1" "$2")" -v t="$(initrd_us "$1" "$2")" \
        'BEGIN { printf "merge %.0f ms (CPU %.0f ms), initrd %.2f s", m / 1000, c / 1000, t / 1e6 }'
}

: >"$RUN/data"
: >"$RUN/boots"
log "$BOOTS rounds of: each variant, alternating, booted twice (cold, warm) from a fresh disk (per-boot timeout $BOOT_TIMEOUT s)"
for ((i = 1; i <= BOOTS; i++)); do
    for v in "${VARIANTS[@]}"; do
        boot "$v" "$i" 1
        boot "$v" "$i" 2
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report --------------------------------------------------------------------------
# stats: "median min max" of the numbers on stdin ("- - -" when there are none).
stats() {
    sort -g | awk 'NF { a[++n] = $1 } END {
        if (n == 0) { print "- - -"; exit }
        m = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        print m, a[1], a[n] }'
}
per_boot() { # per_boot VARIANT FUNCTION [ARG]: FUNCTION [ARG] I VARIANT for each boot
    local i
    for ((i = 1; i <= BOOTS; i++)); do "${@:2}" "$i" "$1"; done
}
unit_us() { # unit_us UNIT I VARIANT: that unit's "Starting" -> "Finished"
    awk -v u="$1" -v i="$2" -v v="$3" '$1 == i && $2 == v && $3 == "unit" && $4 == u { print $6 - $5 }' "$RUN/data"
}
unit_cpu_us() { # unit_cpu_us UNIT I VARIANT: that unit's CPU time (see cpu_us)
    awk -v u="$1" -v i="$2" -v v="$3" '$1 == i && $2 == v && $4 == u && $3 == "cpu" { c = $5 / 1000; nc = 1 }
        $1 == i && $2 == v && $4 == u && $3 == "unit" && $7 != "-" { t = $7 / 1000; n = 1 }
        END { if (nc) printf "%.0f\n", c; else if (n) printf "%.0f\n", t }' "$RUN/data"
}
boot_s() { awk -v i="$1" -v v="$2" '$2 == i && $3 == v { print $4 }' "$RUN/boots"; }
reached_us() { # reached_us TARGET I VARIANT
    awk -v t="$1" -v i="$2" -v v="$3" '$1 == i && $2 == v && $3 == "reached" && $4 == t && $5 != "" { print $5 }' "$RUN/data"
}
ms() { awk '{ if ($1 == "-") print "-"; else printf "%.0f\n", $1 / 1000 }'; }
sec() { awk '{ if ($1 == "-") print "-"; else printf "%.2f\n", $1 / 1e6 }'; }
fmt3() { # fmt3 FILTER: "median (min–max)" from "median min max" on stdin
    local m lo hi
    read -r m lo hi
    if [[ $m == - ]]; then
        echo "-"
    else
        echo "$(echo "$m" | "$1") ($(echo "$lo" | "$1")–$(echo "$hi" | "$1"))"
    fi
}
cell() { per_boot "$@" | stats | fmt3 "$FMT"; } # cell VARIANT FUNCTION [ARG]
median() { per_boot "$@" | stats | cut -d' ' -f1; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r == "-" ? "-" : (r <= t ? "met" : "missed")) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || a == "-" || b == "" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
row() { # row PHASE LABEL FORMAT FUNCTION: one line of the result table
    local p=$1 label=$2 f=$4
    FMT=$3
    echo "| $label | $(cell "extmerge/$p" "$f") | $(cell "systemd/$p" "$f") | $(ratio "$(median "extmerge/$p" "$f")" "$(median "systemd/$p" "$f")") |"
}

# The merge units of each variant, in the order they ran (from the data).
units_of() { awk -v v="$1" '$2 == v && $3 == "unit" && !seen[$4]++ { print $4 }' "$RUN/data"; }

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_gib=$(awk '/^MemTotal:/ { printf "%.0f", $2 / 1048576 }' /proc/meminfo)
qemu_version=$(qemu-system-x86_64 --version | head -n1 | sed 's/^QEMU emulator version //')
host_os=$(. /etc/os-release && echo "$PRETTY_NAME")
size_line() { # size_line KIND < "BYTES PATH" lines
    awk -v k="$1" 'NR == 1 || $1 < min { min = $1 } $1 > max { max = $1 } { n++ }
        END { if (n) printf "%d %s (%.1f–%.1f MiB each)", n, k, min / 1048576, max / 1048576 }'
}
sq_sizes=$(grep -E "/($(IFS='|'; echo "${ext_names[*]:0:N_SQUASHFS}"))\.raw$" "$DISK.sizes" | size_line "squashfs images")
er_sizes=$(grep -E "/($(IFS='|'; echo "${ext_names[*]:N_SQUASHFS:N_EROFS}"))\.raw$" "$DISK.sizes" | size_line "erofs images")
dir_sizes=$(grep -F /etc/extensions/ "$DISK.sizes" | size_line directories)
conf_size=$(grep -F "/$CONFEXT.raw" "$DISK.sizes" | awk '{ printf "%.0f KiB", $1 / 1024 }')
# shellcheck disable=SC2016 # backquotes for Markdown
extmerge_units=$(units_of extmerge/cold | sed 's/.*/`&`/' | paste -sd, - | sed 's/,/, /g')
if [[ $SYSEXT_MODULE == systemd-sysext ]]; then
    systemd_how="dracut-ng's own \`systemd-sysext\` module"
else
    systemd_how="\`qemu-tests/bench/dracut/95extmerge-bench-sysext\`, dracut-ng's \`systemd-sysext\` module
    without its dependency on \`systemd-veritysetup\` (the guest has no \`systemd-veritysetup\`, which
    is in Debian's \`systemd-cryptsetup\` package, so dracut's module cannot be installed); it installs
    the same units and binaries, enables the same units and adds the same dlopen()ed libraries
    (libblkid, libmount, libcryptsetup, libcrypto)"
fi

mkdir -p "$(dirname "$REPORT")"
{
    echo "# Boot benchmark: extmerge vs. systemd's own initrd merge"
    echo
    echo "Generated by \`make bench-boot\` (\`qemu-tests/bench/boot-bench.sh\`) on $(date -u +'%Y-%m-%d %H:%M UTC');"
    echo "do not edit by hand, run it again."
    echo
    echo "## Result"
    echo
    echo "The same guest with 20 system extensions and one configuration extension, booted with"
    echo "each initramfs variant: $BOOTS rounds, alternating the variants, and in each round each"
    echo "variant boots a fresh copy of the disk twice: **cold** (its first boot) and **warm** (the"
    echo "second boot of that copy, with whatever the first boot left on the disk). Under QEMU TCG"
    echo "emulation (no KVM), 1 vCPU: only the ratios carry over to hardware. Median and (min–max)"
    echo "over the rounds."
    for p in "${PHASES[@]}"; do
        echo
        if [[ $p == cold ]]; then
            echo "### Cold: the first boot with these extensions"
        else
            echo "### Warm: every later boot"
        fi
        echo
        echo "| | extmerge | systemd 262 | extmerge/systemd (medians) |"
        echo "|---|---|---|---|"
        row "$p" "**merge time**: the merge units' \"Starting\" → \"Finished\", ms" ms merge_us
        row "$p" "merge CPU time (PID 1's \`CPUUsageNSec\` of the merge units), ms" ms cpu_us
        row "$p" "first merge unit started → last finished, ms" ms span_us
        row "$p" "total initrd time (\`systemd-analyze\`'s initrd figure), s" sec initrd_us
        row "$p" "whole boot (QEMU start → checks done → power-off), s" cat boot_s
    done
    echo
    echo "Per merge unit, \"Starting\" → \"Finished\" and CPU time, ms:"
    echo
    echo "| variant | unit | cold | warm | CPU cold | CPU warm |"
    echo "|---|---|---|---|---|---|"
    for v in "${VARIANTS[@]}"; do
        for u in $(units_of "$v/cold"); do
            FMT=ms
            echo "| $v | \`$u\` | $(cell "$v/cold" unit_us "$u") | $(cell "$v/warm" unit_us "$u") | $(cell "$v/cold" unit_cpu_us "$u") | $(cell "$v/warm" unit_cpu_us "$u") |"
        done
    done
    echo
    echo "## Against the targets (issue 17)"
    echo
    echo "| target | measured | |"
    echo "|---|---|---|"
    for p in "${PHASES[@]}"; do
        r=$(ratio "$(median "extmerge/$p" merge_us)" "$(median "systemd/$p" merge_us)")
        echo "| merge units' time ≤ 0.35 × systemd's, $p boot | $r | $(verdict "$r" 0.35) |"
    done
    r=$(ratio "$(median extmerge/cold cpu_us)" "$(median systemd/cold cpu_us)")
    echo "| merge CPU time ≤ 0.5 × systemd's, cold boot | $r | $(verdict "$r" 0.5) |"
    echo
    echo "## Where extmerge's time goes"
    echo
    echo "extmerge's phase lines (\`EXTMERGE_LOG=info,extmerge_phase=debug\` from the kernel command"
    echo "line: one journal entry per phase with \`CLASS\`, \`PHASE\`, \`DURATION_US\`; README, \"Settings\")"
    echo "from the guest's journal, median (min–max) over the rounds. Each unit is one process"
    echo "(\`initrd-stage\`); a class's **total** is from the start of the class's run to its end (process"
    echo "start-up and exit, and the stage's other steps, are outside it). Indented phases are part of the"
    echo "one above; \`open\` opens the images on up to 4 threads, so the per-image times overlap."
    echo
    python3 "$BENCH_DIR/phase-table.py" "$RUN/data"
    echo
    echo "## Outside the class runs: start-up, steps and exit of extmerge's units"
    echo
    echo "Each extmerge unit is one process, \`extmerge initrd-stage --stage=1|2\`, which runs its stage's"
    echo "steps (stage 2: \`oem-mount\`, \`mount-var\`, \`flatcar-select\`, \`confext refresh\`,"
    echo "\`sysext refresh\`; stage 1: \`confext refresh\`) and logs each"
    echo "one's duration (\"Stage N step X: exit C, US us.\", debug on the phase target, fields \`STEP\`,"
    echo "\`DURATION_US\`). With PID 1's \"Starting\" and \"Finished\" of the unit, the unit's time splits"
    echo "into **start-up**, from \"Starting\" to the beginning of the first step (its line's journal time"
    echo "minus its duration: PID 1's fork and exec, loading the binary, and what the process does"
    echo "before the first step), the **steps** (a step holds its class's run, the \`total\` above, and"
    echo "the step's own set-up), and the **rest**: the gaps between the steps and, after the last one,"
    echo "the exit until PID 1 logs \"Finished\". The times are journald's receive times of PID 1's and"
    echo "extmerge's entries, so an entry journald takes up late moves time between start-up and rest;"
    echo "the last rows give the first and last extmerge journal entry of the unit. Median (min–max)"
    echo "over the rounds, ms. \`oem-mount\` starts Flatcar's \`sysroot-oem.mount\` over PID 1's bus"
    echo "(formerly the unit's \`ExecStartPre=-systemctl start sysroot-oem.mount\`, a process of its own"
    echo "counted in start-up): its step time is the StartUnit call and the wait for the mount's job."
    for u in $(units_of extmerge/cold); do
        pre=$(sed -n 's/^ExecStartPre=//p' "$REPO/units/$u" 2>/dev/null | sed 's/.*/`&`/' | paste -sd, - | sed 's/,/, /g')
        if [[ -n $pre ]]; then
            echo "\`${u%.service}\`'s start-up also holds its \`ExecStartPre=\` command(s), run before extmerge starts: $pre."
        fi
    done
    echo
    python3 "$BENCH_DIR/phase-table.py" --steps "$RUN/data"
    echo
    echo "## First, second and third run in the booted system"
    echo
    echo "Under TCG a code path's first run in a boot pays for its translation. To show how much of"
    echo "the time above is that, every boot ends (after all the checks and measurements above) by"
    echo "running each of these commands three times in a row in the booted system, in this order:"
    echo "\`extmerge status\`, \`systemd-sysext status\`, \`extmerge refresh\` (in the extmerge variant only:"
    echo "on systemd's merge extmerge has no state of its own and would merge again) and"
    echo "\`systemd-sysext refresh\`. Wall clock around each run (bash's \`EPOCHREALTIME\`), output"
    echo "discarded, \`EXTMERGE_LOG\` unset. The status verbs only read; each refresh finds the initrd's"
    echo "merge unchanged and skips (extmerge exits 77, systemd 262 exits 0 with \"Skipping extension"
    echo "refresh because no change was found\"), which every run is checked for, and \`/usr\`, \`/opt\`"
    echo "and \`/etc\` are checked to be the same mounts afterwards. Median (min–max) over the boots of"
    echo "each variant, cold and warm together, ms."
    echo
    python3 "$BENCH_DIR/phase-table.py" --reruns "$RUN/data"
    echo
    echo "Every boot was checked in the booted guest (\`qemu-tests/bench/check-boot-1.sh\`), and a"
    echo "failed check stops the benchmark: each merge unit of the variant ran in the initrd and"
    echo "finished successfully before switch-root, and the other variant's units did not run; all 20"
    echo "sysexts' files are visible (\`/usr/bin/NAME\` runs, 16 files in \`/usr/share/NAME/\`,"
    echo "\`/opt/NAME/marker\`) and the confext's file is in \`/etc\`; \`/usr\` and \`/opt\` are read-only"
    echo "overlays; and the booted system's stock \`systemd-sysext.service\` and \`systemd-confext.service\`"
    echo "found the initrd's merge in place (\"Skipping extension refresh because no change was"
    echo "found\"), so nothing was merged after switch-root. The commands run again at the end of each"
    echo "boot (above) exited as a skipped refresh or a status does and left the same mounts."
    echo
    echo "## Per boot"
    echo
    echo "| round | variant | boot | merge, ms | per unit, ms | CPU, ms | initrd, s | \`/etc\` | whole boot, s |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for ((i = 1; i <= BOOTS; i++)); do
        for v in "${VARIANTS[@]}"; do
            for p in "${PHASES[@]}"; do
                k=$v/$p
                units=$(awk -v i="$i" -v v="$k" '$1 == i && $2 == v && $3 == "unit" {
                    sub(/\.service$/, "", $4); printf "%s%s %.0f", sep, $4, ($6 - $5) / 1000; sep = ", " }' "$RUN/data")
                etc=$(awk -v i="$i" -v v="$k" '$1 == i && $2 == v && $3 == "etc_options" {
                    o = $5; printf "%s %s", $4, (o ~ /(^|,)rw(,|$)/ ? "rw" : "ro");
                    if (match(o, /upperdir=[^,]*/)) printf ", %s", substr(o, RSTART, RLENGTH) }' "$RUN/data")
                echo "| $i | $v | $p | $(merge_us "$i" "$k" | ms) | $units | $(cpu_us "$i" "$k" | ms) | $(initrd_us "$i" "$k" | sec) | $etc | $(boot_s "$i" "$k") |"
            done
        done
    done
    echo
    echo "## How it was measured"
    echo
    echo "- **Guest**: Debian unstable, systemd ${SYSTEMD_VERSION:-?}, dracut ${DRACUT_VERSION:-?}, kernel $KVER"
    echo "  (Debian's 6.12 LTS), ext4 root file system on virtio-blk, built by \`qemu-tests/build-guest.sh\`."
    echo "  Both variants boot the same kernel and a fresh qcow2 overlay of the same disk image, with"
    echo "  the same kernel command line apart from \`extmerge_bench.variant=\`."
    echo "- **Initramfs variants**, both made by the guest's dracut with the same \`--omit\`,"
    echo "  \`--add-drivers\` and test stubs (\`extmerge-test-stubs\`; its Ignition stub does nothing here, as"
    echo "  \`flatcar.first_boot\` is not given):"
    echo "  - *extmerge* ($(du -h "${INITRDS[extmerge]}" | cut -f1)): the boot tests' initramfs from \`build-guest.sh\`,"
    echo "    \`--add \"$INITRD_ADD\"\`. The merge units: $extmerge_units. (When dracut's \`systemd-sysext\`"
    echo "    module is in that list, systemd's two \`-sysroot\` units are in this initramfs too, masked by"
    echo "    extmerge's module; the checks confirm they did not run.)"
    echo "  - *systemd* ($(du -h "${INITRDS[systemd]}" | cut -f1)): \`--add \"$systemd_add\" --omit extmerge\`: systemd's"
    echo "    \`systemd-confext-sysroot.service\` and \`systemd-sysext-sysroot.service\`"
    echo "    (\`systemd-{conf,sys}ext --root=/sysroot refresh\`; the sysext unit is ordered after the"
    echo "    confext one, both before \`initrd-root-fs.target\`), unit files and binaries as the guest's"
    echo "    systemd package ships them, installed by $systemd_how."
    echo "- **Extensions**, on the disk before the boot, the same for both variants: $sq_sizes and"
    echo "  $er_sizes in \`/var/lib/extensions\`, $dir_sizes in \`/etc/extensions\`, and one"
    echo "  squashfs confext ($conf_size) in \`/var/lib/confexts\`. Each sysext has \`/usr/bin/NAME\`,"
    echo "  16 × 128 KiB of incompressible data in \`/usr/share/NAME/\` and \`/opt/NAME/marker\`, so \`/usr\`"
    echo "  and \`/opt\` are both merged; \`extension-release\`: \`ID=debian\` (sysexts), \`ID=_any\` (confext)."
    echo "  The guest's \`/usr/lib/systemd/confext.conf\` has \`Mutable=auto\`, and the disk has Flatcar's"
    echo "  link \`/var/lib/extensions.mutable/etc -> /etc\`, so \`/etc\` may be merged writable with itself as"
    echo "  the upper directory (the \`/etc\` column above shows what each variant did)."
    echo "- **Merge time**: PID 1's journal entries about each merge unit (\`UNIT=\`), read in the booted"
    echo "  system with \`journalctl -b -o export\`: from \"Starting UNIT\" (the start job begins, then fork"
    echo "  and exec) to \"Finished UNIT\" (the oneshot's last \`ExecStart=\` process has exited), the"
    echo "  interval \`systemd-analyze blame\` shows, summed over the variant's merge units (they run one"
    echo "  after the other; systemd's before \`initrd-root-fs.target\`, extmerge's after it, so the"
    echo "  two variants do not merge at the same point of the initrd, and only the merge units' own"
    echo "  time is compared, plus the whole initrd). PID 1 stops"
    echo "  these units when the initrd is left (\`initrd-cleanup.service\` isolates"
    echo "  \`initrd-switch-root.target\`), so their unit properties are gone after switch-root, while the"
    echo "  journal keeps the entries. **CPU time**: PID 1's \`CPUUsageNSec\` of each merge unit (all of its"
    echo "  processes), read in the initrd once the merge units have finished by the test stubs'"
    echo "  \`extmerge-bench-cpu.service\` (both variants; ordered after every merge unit, before"
    echo "  \`initrd-parse-etc.service\`) and logged to the journal; PID 1's own \"Consumed … CPU time\" entry"
    echo "  holds the same counter but is logged only from 1 s up. Inside the interval both variants pay for the"
    echo "  same work: starting the process(es), reading the configuration and \`os-release\` below"
    echo "  \`/sysroot\`, attaching and mounting 17 images, mounting the overlays and writing the metadata"
    echo "  that \`systemd-sysext status\` reads. With one vCPU, anything else the initrd runs at the same"
    echo "  time (udev, other units) also lands in the wall-clock interval; the CPU time does not count it."
    echo "- **Total initrd time**: PID 1's \`UserspaceTimestampMonotonic - InitRDTimestampMonotonic\`, the"
    echo "  formula of \`systemd-analyze\`'s \"(initrd)\" figure (\`systemd-analyze\` itself refuses to run"
    echo "  until the boot has finished, and the check script is part of the boot). It covers the"
    echo "  whole initrd, so it also moves with device probing and everything else."
    echo "- **Cold and warm**: each round boots each variant from a fresh qcow2 overlay of the disk"
    echo "  (cold: nothing of the variant's own state on the disk, as on a machine's first boot with"
    echo "  these extensions, or after they changed), then boots that overlay once more (warm: every"
    echo "  later boot). extmerge identifies images and directory extensions by their inodes (stat"
    echo "  data, no content is read) and keeps no cache, so its cold and warm boots do the same work,"
    echo "  as systemd's do."
    echo "- **Order**: the rounds alternate the variants (extmerge cold, extmerge warm, systemd cold,"
    echo "  systemd warm, extmerge cold, …), so a drift of the host's load affects both alike."
    echo
    echo "## Machine"
    echo
    echo "- Host: $host_os, kernel $(uname -r), $(nproc) CPUs ($cpu_model), ${mem_gib} GiB RAM."
    echo "- QEMU $qemu_version, \`-accel tcg -machine q35 -m 1024 -smp 1\`: **TCG emulation**, no KVM"
    echo "  (not usable on this machine). Every guest instruction is translated, 10–50× slower than"
    echo "  hardware, and the guest's clock runs on while the host deschedules the vCPU thread: the"
    echo "  absolute times are far above a real machine's (the target comparison, \"systemd 262 needs"
    echo "  about 1.7 s to merge 20 squashfs sysexts of ~2 MiB\", is a hardware figure), and a busy"
    echo "  host inflates them."
    echo "- Load average (1, 5, 15 min) at the start: $load_start; at the end: $load_end. Other jobs"
    echo "  were free to run on the host meanwhile."
    echo "- Wall time of the whole run: $(since "$t_all") s. Logs of each boot: \`target/qemu/bench/run/\`."
} >"$REPORT.tmp"
mv "$REPORT.tmp" "$REPORT"
log "report written to $REPORT"
sed -n '/^### /,/^Per merge unit/p' "$REPORT" | sed '$d' >&2
log "done in $(since "$t_all") s"
