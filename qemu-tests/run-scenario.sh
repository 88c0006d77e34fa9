#!/usr/bin/env bash
# Boot one scenario of qemu-tests/scenarios/ under QEMU (TCG) and check its results.
#
# Usage: qemu-tests/run-scenario.sh NAME
#
# A scenario is a directory of plain files (see qemu-tests/README.md):
#   description        one line, printed first
#   boots              how many times the same disk is booted (default 1)
#   cmdline            extra kernel command line arguments (# comments allowed)
#   files              what the Ignition-like stub writes into /sysroot on first boot:
#                        dir|squashfs|erofs|ext4  SOURCE  DEST   (SOURCE below qemu-tests/)
#                        link                     TARGET  DEST
#                        file                     SOURCE  DEST
#                        squashfs-verity          SOURCE  DEST [tamper]
#                        ddi-sysext|ddi-confext   SOURCE  DEST [key=trusted|untrusted]
#                                                                  [sector=4096|512]
#                      (verity images: see "Verity images" below; their root hashes are
#                      written to the checks disk as `roothashes`, lines "DEST HASH")
#                        rm                       -       DEST   (remove DEST; root-N only)
#   config/            a tree copied as is into /sysroot on first boot (after files)
#   ignition-mounts    filesystems the Ignition stub mounts below /sysroot before it writes
#                      (and leaves mounted, as Ignition's mount stage): LABEL /PATH per line
#   cmdline-boot-N     more kernel command line arguments for boot N only
#   root-N             like files, but written straight into the root disk before boot N
#                      (what the OS image itself ships, or an A/B update between boots);
#                      the root disk is then a raw copy of the guest image, not a qcow2
#   NAME-disk          an extra disk attached to every boot (var-disk: a separate /var,
#                      oem-disk: Flatcar's OEM partition, download-disk: a stand-in for a
#                      download server): one line of options
#                        label=LABEL [gpt partlabel=NAME partuuid=UUID]
#                      (ext4 with that label; with gpt, inside a GPT partition)
#   NAME-files         like files, written into that disk's filesystem
#   emergency-boot-N   boot N must end in emergency.target in the initrd: one fixed string
#                      per line that the journal excerpt must contain (`!STRING`: must not)
#   upstream-tests     file names of upstream's test/units/ (systemd-tests, in the chroot of
#                      scripts/mkchroot.sh) copied to upstream/ on the checks disk, with the
#                      package's version in upstream/version
#   suite              another Debian suite for the guest (e.g. trixie: systemd 257), built and
#                      cached in target/qemu-SUITE
#   check-boot-N.sh    runs in the booted guest after multi-user.target in boot N and
#                      prints "ok WHAT" / "not ok WHAT: WHY" lines (qemu-tests/guest/checks/
#                      checklib.sh has the helpers); then the guest powers off
#
# Work files (disk overlay, console and results logs per boot) are kept in
# target/qemu/runs/NAME/ until the next run of NAME.
#
# Environment: QEMU_BOOT_TIMEOUT (seconds per boot, default 240), EXTMERGE_BIN (use this
# static binary instead of `make static`), EXTMERGE_QEMU_INITRD (boot this initramfs
# instead of the one build-guest.sh made), EXTMERGE_QEMU_RUN (name of the work directory,
# default NAME), QEMU_EXTRA_CMDLINE / QEMU_EXTRA_ARGS (added to
# the kernel command line / the QEMU command line, for experiments).
set -euo pipefail
LOG_TAG=qemu-test
# shellcheck source=qemu-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || die "usage: qemu-tests/run-scenario.sh NAME (one of: $(ls "$QT_DIR/scenarios" | tr '\n' ' '))"
NAME=$1
SDIR=$QT_DIR/scenarios/$NAME
[[ -d $SDIR ]] || die "no scenario '$NAME' in $QT_DIR/scenarios"
BOOT_TIMEOUT=${QEMU_BOOT_TIMEOUT:-240}

need_root
need_cmds qemu-system-x86_64 qemu-img mkfs.ext4 mksquashfs mkfs.erofs timeout flock veritysetup od dd \
    sfdisk unshare

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

t_all=$(now)
# A scenario for another Debian suite (`suite`: one word, e.g. trixie for systemd 257) boots a
# guest built for it, cached in target/qemu-SUITE.
if [[ -f $SDIR/suite ]]; then
    suite=$(tr -dc 'a-z' <"$SDIR/suite")
    [[ -n $suite ]] || die "$SDIR/suite: no suite name"
    export EXTMERGE_QEMU_SUITE=$suite EXTMERGE_QEMU_DIR=$REPO/target/qemu-$suite
    QEMU_WORK=$EXTMERGE_QEMU_DIR
    mkdir -p "$QEMU_WORK"
fi
guest_env=$("$QT_DIR/build-guest.sh")
while IFS='=' read -r k v; do
    case $k in
        KVER | KERNEL | INITRD | BASE | VERITY_KEYS | SYSTEMD_VERSION | DRACUT_VERSION) printf -v "$k" '%s' "$v" ;;
    esac
done <<<"$guest_env"
# Another initramfs for the same kernel (scripts/qemu-dracut059.sh boots one made by
# Debian 12's dracut).
INITRD=${EXTMERGE_QEMU_INITRD:-$INITRD}
for f in "$KERNEL" "$INITRD" "$BASE"; do
    [[ -f $f ]] || die "guest build left no $f"
done

RUN=${EXTMERGE_QEMU_RUN:-$NAME}
WORK=$QEMU_WORK/runs/$RUN
mkdir -p "$QEMU_WORK/runs"
# One run of a scenario at a time (its work directory is reused).
exec 8>"$QEMU_WORK/runs/.$RUN.lock"
flock -w 1800 8 || die "timed out waiting for another run of $RUN"
rm -rf --one-file-system "$WORK"
mkdir -p "$WORK"
[[ -f $SDIR/description ]] && log "$NAME: $(head -n1 "$SDIR/description")"

boots=1
[[ -f $SDIR/boots ]] && boots=$(tr -dc '0-9' <"$SDIR/boots")
[[ $boots =~ ^[1-9][0-9]*$ ]] || die "$SDIR/boots: not a positive number"
extra_cmdline=""
[[ -f $SDIR/cmdline ]] && extra_cmdline=$(sed 's/#.*//' "$SDIR/cmdline" | tr -s ' \n' '  ')

# An ext4 image of DIR (mkfs.ext4 -d; sized to fit), labelled LABEL if one is given.
ext4_image() {
    local dir=$1 label=$2 img=$3 mb
    mb=$(($(du -s -B1M --apparent-size "$dir" | cut -f1) * 2 + 16))
    truncate -s "${mb}M" "$img"
    mkfs.ext4 -q -F ${label:+-L "$label"} -d "$dir" "$img" || die "mkfs.ext4 -d $dir failed"
}

# Stage a copy of SOURCE owned by root (images must not carry the checkout's owner).
stage_copy() {
    local src=$QT_DIR/$1 dst=$2
    [[ -d $src ]] || die "$SDIR/files: no directory $src"
    rm -rf "$dst"
    cp -a "$src" "$dst"
    chown -R 0:0 "$dst"
}

# ---- verity images (issue 5) -------------------------------------------------------------
# squashfs-verity: a squashfs image with NAME.roothash and NAME.verity sidecars next to it
# (veritysetup format). With `tamper`, one byte of the image's first 4 KiB block (which
# every mount reads) is flipped after the hash tree was computed. A one-block image is
# first padded with a zero block (squashfs ignores bytes past its end): then the tree has
# a hash level, the root hash still matches it, and only dm-verity's check of the data
# block on read can catch the change.
# ddi-sysext / ddi-confext: a signed Discoverable Disk Image made by
# `systemd-repart --make-ddi=CLASS` in the Debian unstable chroot (scripts/mkchroot.sh),
# signed with the test key `key=` names (build-guest.sh makes them; the guest trusts only
# `trusted`, the default). Sectors are 4096 bytes unless `sector=512`: repart then makes
# an erofs with 512-byte blocks, which extmerge opens but systemd 262 cannot (libblkid
# 2.42 does not detect such an erofs, so systemd-sysext fails to read its metadata).

# Record DEST's root hash for the checks (roothashes on the checks disk).
record_roothash() {
    [[ $2 =~ ^[0-9a-f]{64}$ ]] || die "$SDIR/files: no root hash for $1 (got '$2')"
    echo "$1 $2" >>"$WORK/roothashes"
}

# Flip (xor 0xff) the byte at OFFSET of FILE.
flip_byte() {
    local file=$1 off=$2 b
    b=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' ')
    [[ $b =~ ^[0-9]+$ ]] || die "cannot read byte $off of $file"
    # shellcheck disable=SC2059 # the format is the escaped byte
    printf "$(printf '\\%03o' $((b ^ 255)))" |
        dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
}

squashfs_verity() {
    local src=$1 target=$2 dest=$3 tamper=$4 base out rh
    stage_copy "$src" "$stage"
    mksquashfs "$stage" "$target" -all-root -noappend -quiet >/dev/null || die "mksquashfs $src failed"
    if [[ -n $tamper ]] && (($(stat -c %s "$target") < 8192)); then
        truncate -s 8192 "$target"
    fi
    base=${target%.raw}
    out=$(veritysetup format "$target" "$base.verity" 2>&1) || die "veritysetup format $target failed: $out"
    rh=$(sed -n 's/^Root hash:[[:space:]]*//p' <<<"$out")
    record_roothash "$dest" "$rh"
    echo "$rh" >"$base.roothash"
    if [[ -n $tamper ]]; then
        flip_byte "$target" 2048
        if veritysetup verify "$target" "$base.verity" "$rh" >/dev/null 2>&1; then
            die "$target still verifies after flipping a byte"
        fi
    fi
}

ddi_image() {
    local class=$1 src=$2 target=$3 dest=$4 key=$5 sector=$6 chroot tmp inside out rh
    [[ -f $VERITY_KEYS/$key.key && -f $VERITY_KEYS/$key.crt ]] ||
        die "no test key '$key' in ${VERITY_KEYS:-?} (build-guest.sh makes trusted and untrusted)"
    "$REPO/scripts/mkchroot.sh" build
    chroot=$("$REPO/scripts/mkchroot.sh" path)
    tmp=$(mktemp -d "$chroot/tmp/extmerge-qemu-ddi.XXXXXX")
    inside=/tmp/$(basename "$tmp")
    stage_copy "$src" "$tmp/src"
    install -m 0600 "$VERITY_KEYS/$key.key" "$tmp/signing.key"
    install -m 0644 "$VERITY_KEYS/$key.crt" "$tmp/signing.crt"
    if ! out=$("$REPO/scripts/mkchroot.sh" run systemd-repart --make-ddi="$class" --offline=yes \
        --json=short --sector-size="$sector" --private-key="$inside/signing.key" \
        --certificate="$inside/signing.crt" --copy-source="$inside/src" "$inside/image.raw" \
        2>"$WORK/repart.log"); then
        tail -n 20 "$WORK/repart.log" >&2
        rm -rf --one-file-system "$tmp"
        die "systemd-repart --make-ddi=$class $src failed (log: $WORK/repart.log)"
    fi
    # The root hash of the data partition, as repart reports it.
    rh=$(grep -oE '"roothash":"[0-9a-f]{64}"' <<<"$out" | head -n1 | grep -oE '[0-9a-f]{64}' || true)
    record_roothash "$dest" "$rh"
    mv "$tmp/image.raw" "$target"
    rm -rf --one-file-system "$tmp"
}

# ---- placing files: SPEC (files, root-N, var-files) into a tree ------------------------
# place_files SPEC ROOT: create what SPEC lists below ROOT. `rm` lines are collected in
# ROOT.removals (paths to delete when the tree is copied into a disk).
place_files() {
    local spec=$1 root=$2 stage=$WORK/stage kind src dest opts target tamper key sector o
    mkdir -p "$root"
    : >"$root.removals"
    [[ -f $spec ]] || return 0
    while read -r kind src dest opts; do
        [[ -z ${kind:-} || $kind == \#* ]] && continue
        [[ -n ${dest:-} && $dest == /* ]] ||
            die "$spec: want 'KIND SOURCE /DEST [OPTIONS]', got '$kind $src ${dest:-} ${opts:-}'"
        tamper="" key=trusted sector=4096
        for o in ${opts:-}; do
            case $kind:$o in
                squashfs-verity:tamper) tamper=1 ;;
                ddi-*:key=trusted | ddi-*:key=untrusted) key=${o#key=} ;;
                ddi-*:sector=512 | ddi-*:sector=4096) sector=${o#sector=} ;;
                *) die "$spec: option '$o' is not valid for $kind" ;;
            esac
        done
        if [[ $kind == rm ]]; then
            echo "$dest" >>"$root.removals"
            continue
        fi
        target=$root$dest
        mkdir -p "$(dirname "$target")"
        case $kind in
            dir)
                stage_copy "$src" "$target"
                ;;
            file)
                install -m 0644 "$QT_DIR/$src" "$target"
                ;;
            link)
                ln -sfn "$src" "$target"
                ;;
            squashfs)
                stage_copy "$src" "$stage"
                mksquashfs "$stage" "$target" -all-root -noappend -quiet >/dev/null ||
                    die "mksquashfs $src failed"
                ;;
            erofs)
                stage_copy "$src" "$stage"
                mkfs.erofs --quiet --all-root "$target" "$stage" >/dev/null || die "mkfs.erofs $src failed"
                ;;
            ext4)
                stage_copy "$src" "$stage"
                ext4_image "$stage" "" "$target"
                ;;
            squashfs-verity)
                squashfs_verity "$src" "$target" "$dest" "$tamper"
                ;;
            ddi-sysext | ddi-confext)
                ddi_image "${kind#ddi-}" "$src" "$target" "$dest" "$key" "$sector"
                ;;
            *)
                die "$spec: unknown kind '$kind' (dir, file, link, squashfs, erofs, ext4, squashfs-verity, ddi-sysext, ddi-confext, rm)"
                ;;
        esac
    done <"$spec"
    rm -rf "$stage"
}

# ---- the Ignition config disk: the tree written into /sysroot on first boot ----------
build_config() {
    local root=$WORK/config/root
    : >"$WORK/roothashes"
    place_files "$SDIR/files" "$root"
    [[ -s $root.removals ]] && die "$SDIR/files: 'rm' is only for root-N (Ignition writes, it does not delete)"
    rm -f "$root.removals"
    if [[ -d $SDIR/config ]]; then
        cp -a "$SDIR/config/." "$root/"
    fi
    # Filesystems Ignition mounts before it writes (its mount stage), e.g. the user's /var.
    if [[ -f $SDIR/ignition-mounts ]]; then
        sed 's/#.*//' "$SDIR/ignition-mounts" | awk 'NF' >"$WORK/config/mounts"
        awk 'NF != 2 || $2 !~ /^\// { exit 1 }' "$WORK/config/mounts" ||
            die "$SDIR/ignition-mounts: want 'LABEL /PATH' per line"
    fi
    chown -R 0:0 "$root"
    ext4_image "$WORK/config" ignition "$WORK/config.img"
}

# ---- upstream's test files (upstream-tests), from the chroot's systemd-tests ----------
copy_upstream_tests() {
    [[ -f $SDIR/upstream-tests ]] || return 0
    local chroot units name dest=$WORK/checks/upstream
    "$REPO/scripts/mkchroot.sh" build
    chroot=$("$REPO/scripts/mkchroot.sh" path)
    units=$chroot/usr/lib/systemd/tests/testdata/units
    mkdir -p "$dest"
    while read -r name; do
        [[ -z $name || $name == \#* ]] && continue
        [[ -f $units/$name ]] || die "$SDIR/upstream-tests: no $units/$name (systemd-tests in the chroot?)"
        cp "$units/$name" "$dest/"
    done <"$SDIR/upstream-tests"
    # shellcheck disable=SC2016 # dpkg-query's format
    chroot "$chroot" dpkg-query -W -f='${Version}' systemd-tests >"$dest/version" ||
        die "systemd-tests is not installed in $chroot"
}

# ---- the checks disk: checklib + this scenario's check-boot-N.sh ---------------------
build_checks() {
    mkdir -p "$WORK/checks"
    cp "$QT_DIR"/guest/checks/*.sh "$WORK/checks/"
    cp "$SDIR"/check-*.sh "$WORK/checks/" 2>/dev/null ||
        compgen -G "$SDIR/emergency-boot-*" >/dev/null ||
        die "scenario $NAME has no check-boot-N.sh"
    cp "$WORK/roothashes" "$WORK/checks/roothashes"
    copy_upstream_tests
    chown -R 0:0 "$WORK/checks"
    ext4_image "$WORK/checks" extmerge-test "$WORK/checks.img"
}

# ---- the root disk: a qcow2 overlay of the guest image, or a raw copy to write into ----
ROOT_RAW=""
if compgen -G "$SDIR/root-*" >/dev/null; then
    ROOT_RAW=$WORK/root.img
    cp --sparse=always "$BASE" "$ROOT_RAW"
else
    qemu-img create -q -f qcow2 -b "$BASE" -F raw "$WORK/root.qcow2"
fi

# build_root N: the tree root-N lists (before the checks disk is made, so that the root
# hashes of its verity images reach `roothashes`).
build_root() {
    local n=$1 tree=$WORK/root-$1/tree
    place_files "$SDIR/root-$n" "$tree"
    chown -R 0:0 "$tree"
}

# apply_root N: write root-N into the raw root disk (loop-mounted in a private namespace).
apply_root() {
    local n=$1 tree
    tree=$WORK/root-$n/tree
    [[ -f $SDIR/root-$n ]] || return 0
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m --propagation private -- /bin/bash -euc '
        img=$1 tree=$2 mnt=$3
        mkdir -p "$mnt"
        mount -o loop "$img" "$mnt"
        while read -r p; do
            rm -rf --one-file-system "${mnt:?}$p"
        done <"$tree.removals"
        cp -a "$tree/." "$mnt/"
        umount "$mnt"
    ' apply-root "$ROOT_RAW" "$tree" "$WORK/root-$n/mnt" || die "writing root-$n into the root disk failed"
    log "$NAME: wrote root-$n into the root disk"
}

# ---- extra disks (var-disk and var-files, oem-disk and oem-files, …) -------------------
# build_disk NAME: the disk NAME-disk describes, holding the tree NAME-files lists; its
# image path is appended to EXTRA_DISKS.
EXTRA_DISKS=()
build_disk() {
    local name=$1 spec=$SDIR/$1-disk label="" gpt="" partlabel="" partuuid="" o
    local tree=$WORK/$1/root fs=$WORK/$1-fs.img img=$WORK/$1.img bytes
    for o in $(sed 's/#.*//' "$spec"); do
        case $o in
            label=*) label=${o#label=} ;;
            gpt) gpt=1 ;;
            partlabel=*) partlabel=${o#partlabel=} ;;
            partuuid=*) partuuid=${o#partuuid=} ;;
            *) die "$spec: unknown option '$o' (label=, gpt, partlabel=, partuuid=)" ;;
        esac
    done
    [[ -n $label ]] || die "$spec: label= is required"
    place_files "$SDIR/$name-files" "$tree"
    rm -f "$tree.removals"
    chown -R 0:0 "$tree"
    ext4_image "$tree" "$label" "$fs"
    if [[ -n $gpt ]]; then
        [[ -n $partlabel && -n $partuuid ]] || die "$spec: gpt needs partlabel= and partuuid="
        bytes=$(stat -c %s "$fs")
        # 1 MiB before the partition, 1 MiB after it for the backup GPT.
        truncate -s $((bytes + 2 * 1048576)) "$img"
        printf 'label: gpt\nstart=2048, size=%d, name="%s", uuid=%s\n' \
            $((bytes / 512)) "$partlabel" "$partuuid" | sfdisk -q "$img" >/dev/null ||
            die "sfdisk failed for $img"
        dd if="$fs" of="$img" bs=1M seek=1 conv=notrunc status=none
        rm -f "$fs"
    else
        mv "$fs" "$img"
    fi
    EXTRA_DISKS+=("$img")
}

build_config
for ((n = 1; n <= boots; n++)); do
    if [[ -f $SDIR/root-$n ]]; then
        build_root "$n"
    fi
done
for spec in "$SDIR"/*-disk; do
    if [[ -f $spec ]]; then
        build_disk "$(basename "${spec%-disk}")"
    fi
done
build_checks

# ---- boot N of the disk ------------------------------------------------------------------
# Sets BOOT_SECONDS; returns non-zero (after printing why) when the boot failed.
boot() {
    local n=$1 console=$WORK/console-boot-$1.log results=$WORK/results-boot-$1.log
    local cmdline drives=() rc t0 raw emergency=$SDIR/emergency-boot-$1 want d
    cmdline="root=/dev/vda rw console=ttyS0,115200 panic=1 mitigations=off extmerge_test.boot=$n"
    apply_root "$n"
    if [[ -n $ROOT_RAW ]]; then
        drives+=(-drive "if=virtio,file=$ROOT_RAW,format=raw")
    else
        drives+=(-drive "if=virtio,file=$WORK/root.qcow2,format=qcow2")
    fi
    drives+=(-drive "if=virtio,file=$WORK/checks.img,format=raw,readonly=on")
    if ((n == 1)); then
        # First boot: Ignition's config disk, and the first-boot flag Flatcar's GRUB sets.
        cmdline+=" flatcar.first_boot=1"
        drives+=(-drive "if=virtio,file=$WORK/config.img,format=raw,readonly=on")
    fi
    for d in "${EXTRA_DISKS[@]}"; do
        drives+=(-drive "if=virtio,file=$d,format=raw")
    done
    [[ -n $extra_cmdline ]] && cmdline+=" $extra_cmdline"
    if [[ -f $SDIR/cmdline-boot-$n ]]; then
        cmdline+=" $(sed 's/#.*//' "$SDIR/cmdline-boot-$n" | tr -s ' \n' '  ')"
    fi
    [[ -n ${QEMU_EXTRA_CMDLINE:-} ]] && cmdline+=" $QEMU_EXTRA_CMDLINE"
    : >"$console"
    : >"$results"
    t0=$(now)
    rc=0
    timeout -k 10 "$BOOT_TIMEOUT" qemu-system-x86_64 \
        -accel tcg -machine q35 -m 1024 -smp 1 \
        -nodefaults -nographic -no-reboot -monitor none \
        -kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline" \
        "${drives[@]}" ${QEMU_EXTRA_ARGS:-} \
        -serial "file:$console" -serial "file:$results" \
        </dev/null >"$WORK/qemu-boot-$n.log" 2>&1 || rc=$?
    BOOT_SECONDS=$(since "$t0")
    raw=$(tr -d '\r' <"$results")
    local problem=""
    if ((rc == 124 || rc == 137)); then
        problem="timed out after ${BOOT_TIMEOUT} s (QEMU killed)"
    elif ((rc != 0)); then
        problem="QEMU exited with $rc: $(tail -n 5 "$WORK/qemu-boot-$n.log" | tr '\n' ' ')"
    elif [[ -f $emergency ]]; then
        # Expected: emergency.target in the initrd, for the reasons listed.
        if ! grep -qx "not ok boot reached emergency.target in the initrd" <<<"$raw"; then
            problem="expected emergency.target in the initrd, but the boot did not report it"
        else
            # The reporter's journal excerpt, or the console (the unit's stderr and PID 1's
            # status lines go there too): journalctl in emergency mode can find the runtime
            # journal mid-write ("truncated, ignoring file").
            local seen
            seen="$raw"$'\n'"$(tr -d '\r' <"$console")"
            while IFS= read -r want; do
                [[ -z $want || $want == \#* ]] && continue
                if [[ $want == !* ]]; then
                    if grep -qF -- "${want#!}" <<<"$seen"; then
                        problem="emergency journal shows '${want#!}'"
                    else
                        raw+=$'\n'"ok emergency journal does not show: ${want#!}"
                    fi
                elif grep -qF -- "$want" <<<"$seen"; then
                    raw+=$'\n'"ok emergency journal shows: $want"
                else
                    problem="emergency journal lacks '$want'"
                fi
            done <"$emergency"
            # The emergency line itself is the expected outcome here, not a failure.
            raw=$(sed 's/^not ok boot reached emergency.target in the initrd$/ok boot reached emergency.target in the initrd (expected)/' <<<"$raw")
        fi
    elif ! grep -qx "begin boot $n" <<<"$raw"; then
        problem="the guest never ran its checks (no 'begin boot $n' on the results port)"
    elif ! grep -qx "end boot $n" <<<"$raw"; then
        problem="the checks did not finish (no 'end boot $n' on the results port)"
    elif grep -q '^not ok' <<<"$raw"; then
        problem="$(grep -c '^not ok' <<<"$raw") check(s) failed"
    elif ! grep -q '^ok ' <<<"$raw"; then
        problem="no check passed"
    fi
    # The results are always shown (nextest shows them for failures or with --no-capture).
    [[ -n $raw ]] && sed "s/^/  [$NAME boot $n] /" <<<"$raw" >&2
    if [[ -n $problem ]]; then
        log "$NAME: boot $n/$boots FAILED: $problem (${BOOT_SECONDS} s)"
        log "--- last 80 console lines ($console):"
        tr -d '\r' <"$console" | tail -n 80 | sed 's/^/  | /' >&2
        log "--- full logs in $WORK"
        return 1
    fi
    log "$NAME: boot $n/$boots: $(grep -c '^ok ' <<<"$raw") checks ok in ${BOOT_SECONDS} s"
    return 0
}

for ((n = 1; n <= boots; n++)); do
    boot "$n" || die "scenario $NAME failed in boot $n"
done
log "$NAME: passed ($boots boot(s), $(since "$t_all") s in all)"
