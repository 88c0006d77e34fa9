#!/usr/bin/env bash
# Build (and cache) the QEMU boot-test guest under target/qemu/:
#
#   rootfs/            Debian unstable (debootstrap minbase + systemd, dracut, …) with
#                      the modules of Debian's 6.12 LTS kernel from trixie (the .deb is
#                      downloaded with a private apt state and extracted, never installed)
#   vmlinuz-KVER       that kernel
#   initrd-KEY.img     made by the rootfs's own dracut: --add extmerge (our module, our
#                      static binary, our unit) and the test stubs (extmerge-test-stubs)
#   base-KEY.img       the rootfs written to an ext4 image with mkfs.ext4 -d; scenarios
#                      boot qcow2 copy-on-write overlays of it
#   keys/              test signing keys (openssl req -x509, made once): trusted.{key,crt},
#                      whose certificate the guest trusts (/usr/lib/verity.d/test.crt), and
#                      untrusted.{key,crt}, which it does not; run-scenario.sh signs DDIs
#   guest.env          KVER, KERNEL, INITRD, BASE, VERITY_KEYS: what run-scenario.sh boots
#                      (also printed on stdout; all logging goes to stderr)
#
# Each stage is keyed on its inputs (rootfs recipe, kernel version, binary hash, dracut
# modules, units, guest files, test certificate) and rebuilt only when they change;
# everything is built in temporary names and renamed into place. Build steps that mount
# run in a private mount namespace, so nothing stays mounted even when interrupted.
#
# Usage: qemu-tests/build-guest.sh        (EXTMERGE_BIN=PATH skips `make static`)
set -euo pipefail
LOG_TAG=qemu-guest
# shellcheck source=qemu-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Debian unstable (systemd 262) by default; EXTMERGE_QEMU_SUITE=trixie builds a systemd 257
# guest (the version Flatcar Stable ships, without refresh-skip logic) into its own directory
# (run-scenario.sh sets both for a scenario with a `suite` file).
SUITE=${EXTMERGE_QEMU_SUITE:-unstable}
PACKAGES=(
    systemd systemd-sysv udev
    dracut zstd
    erofs-utils squashfs-tools
    cryptsetup-bin dmsetup
    systemd-repart
    # systemd-veritysetup: dracut's systemd-sysext module (which brings systemd's
    # -sysroot units into the initrd, for the double-merge test) depends on it.
    systemd-cryptsetup
    kmod util-linux e2fsprogs
    # openssl, attr (setfattr): upstream's TEST-50-DISSECT.sysext.sh makes signed verity
    # images with them (scenario upstream_verity).
    openssl attr
)
KERNEL_SUITE=trixie          # Debian's 6.12 LTS line, what Flatcar ships
KERNEL_SERIES=6.12
# Driver trees a virtio guest never needs: dropped to keep the image small.
PRUNE_MODULES=(
    sound drivers/gpu drivers/media drivers/net drivers/infiniband drivers/staging
    drivers/iio drivers/bluetooth drivers/usb drivers/video drivers/comedi drivers/mtd
    drivers/thunderbolt drivers/hwmon drivers/isdn drivers/misc drivers/platform
    drivers/power drivers/leds drivers/hid drivers/input net/wireless net/mac80211
    net/bluetooth net/netfilter net/ipv6/netfilter net/ipv4/netfilter
)
ROOTFS_RECIPE_VERSION=1 # bump when the rootfs steps below change
DISK_RECIPE_VERSION=2   # bump when the disk image steps change (2: systemd-sysext.service
                        # and systemd-confext.service enabled, test cert in verity.d)
INITRD_RECIPE_VERSION=2 # bump when the dracut invocation changes (2: + systemd-sysext)
# dracut modules added to the test initrd: ours, the test stubs, and dracut's own
# systemd-sysext module, which installs and enables systemd's systemd-{sys,conf}ext-sysroot
# units (systemd >= 261), so the boots prove that our module masks them (no double merge).
INITRD_ADD="systemd-sysext extmerge extmerge-test-stubs"
# Kernel drivers the guest needs before the root filesystem is mounted.
INITRD_DRIVERS="virtio_pci virtio_blk virtio_console ext4 loop overlay squashfs erofs"
# dracut modules a serial-console virtio guest does not need (faster build and boot).
INITRD_OMIT="plymouth i18n bluetooth btrfs nfs iscsi nbd multipath mdraid lvm crypt \
 resume usrmount terminfo biosdevname memstrack rngd fcoe fcoe-uefi network network-legacy \
 network-manager systemd-networkd ifcfg qemu-net"

need_root
need_cmds debootstrap unshare chroot apt-get dpkg-deb mkfs.ext4 flock sha256sum file openssl
mkdir -p "$QEMU_WORK/cache"
ROOTFS=$QEMU_WORK/rootfs
STAMP=$ROOTFS/.extmerge-qemu-ready
ENV_FILE=$QEMU_WORK/guest.env
KEYS=$QEMU_WORK/keys

pkglist=$(IFS=,; echo "${PACKAGES[*]}")
rootfs_key=$(printf '%s\n' "v$ROOTFS_RECIPE_VERSION" "$SUITE" "$pkglist" "$KERNEL_SUITE" \
    "$KERNEL_SERIES" "${PRUNE_MODULES[*]}" | sha256sum | cut -c1-16)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# ---- the kernel: a private apt state for trixie, apt-get download, dpkg-deb -x -------
apt_trixie() {
    local d=$QEMU_WORK/cache/apt-$KERNEL_SUITE
    mkdir -p "$d/state/lists/partial" "$d/cache/archives/partial" "$d/etc"
    [[ -f $d/state/status ]] || : >"$d/state/status"
    printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s main\n' \
        "$(debian_mirror)" "$KERNEL_SUITE" >"$d/etc/sources.list"
    apt-get -q -o Dir::Etc::SourceList="$d/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
        -o Dir::State="$d/state" -o Dir::State::status="$d/state/status" \
        -o Dir::Cache="$d/cache" -o APT::Architecture=amd64 -o Acquire::Languages=none \
        -o APT::Sandbox::User=root "$@"
}
apt_cache_trixie() {
    local d=$QEMU_WORK/cache/apt-$KERNEL_SUITE
    apt-cache -o Dir::Etc::SourceList="$d/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null \
        -o Dir::State="$d/state" -o Dir::State::status="$d/state/status" \
        -o Dir::Cache="$d/cache" -o APT::Architecture=amd64 "$@"
}

# Download the newest linux-image-6.12.*-amd64[-unsigned] of trixie into DIR; print the
# .deb's path.
fetch_kernel() {
    local dir=$1 alog=$QEMU_WORK/cache/apt-$KERNEL_SUITE.log meta pkg
    if ! apt_trixie update >"$alog" 2>&1; then
        tail -n 20 "$alog" >&2
        die "apt-get update for $KERNEL_SUITE failed (log: $alog)"
    fi
    # linux-image-amd64 (the metapackage) depends on the current ABI's image package.
    meta=$(apt_cache_trixie show linux-image-amd64 2>/dev/null |
        sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-amd64\).*/\1/p' | head -n1)
    [[ $meta == linux-image-$KERNEL_SERIES.* ]] ||
        die "$KERNEL_SUITE's linux-image-amd64 does not depend on a $KERNEL_SERIES kernel (got '${meta:-nothing}')"
    pkg=$meta
    if apt_cache_trixie show "$meta-unsigned" >/dev/null 2>&1; then
        pkg=$meta-unsigned
    fi
    log "downloading $pkg from $KERNEL_SUITE"
    if ! (cd "$dir" && apt_trixie download "$pkg" >>"$alog" 2>&1); then
        tail -n 20 "$alog" >&2
        die "apt-get download $pkg failed (log: $alog)"
    fi
    ls "$dir"/"$pkg"_*.deb
}

# ---- stage A: the root filesystem tree ------------------------------------------------
rootfs_ready() { [[ -f $STAMP && $(sed -n 's/^key=//p' "$STAMP") == "$rootfs_key" ]]; }

build_rootfs() {
    local t0 tmp dlog deb kx kver old
    t0=$(now)
    rm -rf --one-file-system "$QEMU_WORK"/.rootfs.* "$QEMU_WORK"/.old-rootfs.*
    tmp=$(mktemp -d "$QEMU_WORK/.rootfs.XXXXXX")
    chmod 0755 "$tmp" # the root directory of the guest
    # shellcheck disable=SC2064
    trap "rm -rf --one-file-system '$tmp' '$tmp.kernel'" EXIT
    dlog=$QEMU_WORK/debootstrap.log
    mkdir -p "$QEMU_WORK/cache/debs"
    log "debootstrap $SUITE (minbase + ${PACKAGES[*]}); log: $dlog"
    if ! unshare -m --propagation private \
        debootstrap --variant=minbase --include="$pkglist" --merged-usr \
        --cache-dir="$QEMU_WORK/cache/debs" "$SUITE" "$tmp" "$(debian_mirror)" >"$dlog" 2>&1; then
        tail -n 30 "$dlog" >&2
        die "debootstrap failed (full log: $dlog)"
    fi
    log "debootstrap done in $(since "$t0") s"

    # Kernel: extract the .deb, keep the modules (pruned) in the tree and vmlinuz beside.
    mkdir -p "$tmp.kernel"
    deb=$(fetch_kernel "$tmp.kernel")
    kx=$tmp.kernel/x
    dpkg-deb -x "$deb" "$kx"
    kver=$(basename "$(ls -d "$kx"/usr/lib/modules/*/ | head -n1)")
    [[ -n $kver && -f $kx/boot/vmlinuz-$kver ]] || die "no vmlinuz/modules in $deb"
    local p
    for p in "${PRUNE_MODULES[@]}"; do
        rm -rf "${kx:?}/usr/lib/modules/$kver/kernel/$p"
    done
    mkdir -p "$tmp/usr/lib/modules"
    mv "$kx/usr/lib/modules/$kver" "$tmp/usr/lib/modules/$kver"
    mkdir -p "$tmp/boot"
    cp "$kx/boot/vmlinuz-$kver" "$kx/boot/config-$kver" "$kx/boot/System.map-$kver" "$tmp/boot/"
    chroot_run "$tmp" depmod -a "$kver"
    rm -rf --one-file-system "$tmp.kernel"

    # Configuration of a small, quiet test guest.
    echo extmerge-guest >"$tmp/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 extmerge-guest\n' >"$tmp/etc/hosts"
    # A fixed machine ID: not a "first boot" for systemd (no preset-all), same everywhere.
    echo 6578746d657267652d71656d752d3031 >"$tmp/etc/machine-id"
    : >"$tmp/etc/fstab"
    chroot_run "$tmp" passwd -q -d root
    chroot_run "$tmp" systemctl -q set-default multi-user.target
    chroot_run "$tmp" systemctl -q mask apt-daily.timer apt-daily-upgrade.timer \
        dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
        getty@tty1.service systemd-pstore.service
    # Space: no apt lists, docs, manuals or locales in a test guest.
    rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/var/cache/apt/archives/*.deb \
        "$tmp"/usr/share/doc/* "$tmp"/usr/share/man/* "$tmp"/usr/share/info/* "$tmp"/usr/share/locale/*
    {
        echo "key=$rootfs_key"
        echo "kver=$kver"
        echo "kernel_deb=$(basename "$deb")"
        echo "systemd=$(chroot "$tmp" dpkg-query -W -f='${Version}' systemd)"
        echo "dracut=$(chroot "$tmp" dpkg-query -W -f='${Version}' dracut)"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$(since "$t0")"
    } >"$tmp/.extmerge-qemu-ready"
    if [[ -e $ROOTFS ]]; then
        old=$QEMU_WORK/.old-rootfs.$$
        mv "$ROOTFS" "$old"
    fi
    mv "$tmp" "$ROOTFS"
    trap - EXIT
    [[ -n ${old:-} ]] && rm -rf --one-file-system "$old"
    log "rootfs ready: Debian $SUITE, kernel $kver, $(du -sh --one-file-system "$ROOTFS" | cut -f1), $(since "$t0") s"
}

# ---- test signing keys ------------------------------------------------------------------
# Made once (self-signed, RSA 2048) and kept: the trusted certificate is part of the disk
# image's key, so new keys rebuild the disk image.
make_keys() {
    local k
    mkdir -p "$KEYS"
    for k in trusted untrusted; do
        [[ -s $KEYS/$k.key && -s $KEYS/$k.crt ]] && continue
        rm -f "$KEYS/.$k".*
        openssl req -x509 -nodes -days 3650 -newkey rsa:2048 -subj "/CN=extmerge QEMU test key ($k)" \
            -keyout "$KEYS/.$k.key" -out "$KEYS/.$k.crt" >/dev/null 2>&1 ||
            die "openssl req -x509 failed for the $k test key"
        mv "$KEYS/.$k.key" "$KEYS/$k.key"
        mv "$KEYS/.$k.crt" "$KEYS/$k.crt"
        log "made the $k test signing key in $KEYS"
    done
}

# ---- our files in the tree (what a package would install) -----------------------------
install_ours() {
    local bin=$1 d
    install -m 0755 "$bin" "$ROOTFS/usr/bin/extmerge"
    install -m 0644 "$REPO"/units/extmerge-sysroot*.service "$ROOTFS/usr/lib/systemd/system/"
    # The booted system's drop-ins where make install puts them: inactive until a scenario links
    # them into /etc/systemd/system/UNIT.d/ (booted_refresh).
    rm -rf "$ROOTFS/usr/lib/extmerge/booted"
    mkdir -p "$ROOTFS/usr/lib/extmerge"
    cp -r "$REPO/units/booted" "$ROOTFS/usr/lib/extmerge/booted"
    for d in 90extmerge 91extmerge-test-stubs; do
        rm -rf "$ROOTFS/usr/lib/dracut/modules.d/$d"
        cp -r "$REPO/dracut-module/$d" "$ROOTFS/usr/lib/dracut/modules.d/$d"
    done
    # The guest's test plumbing: results unit, emergency report, confext.conf.
    cp -r --no-preserve=ownership "$QT_DIR/guest/rootfs/." "$ROOTFS/"
    install -m 0755 "$REPO/dracut-module/91extmerge-test-stubs/emergency-report.sh" \
        "$ROOTFS/usr/local/libexec/extmerge-test/emergency-report"
    chroot_run "$ROOTFS" systemctl -q add-wants multi-user.target extmerge-test-results.service
    chroot_run "$ROOTFS" systemctl -q add-wants emergency.target extmerge-test-emergency.service
    # As on Flatcar, the booted system runs the stock refresh units (Debian leaves them
    # disabled): after extmerge's initrd merge they must find nothing to do.
    chroot_run "$ROOTFS" systemctl -q enable systemd-sysext.service systemd-confext.service
    # The certificate signed DDIs are checked against (issue 5: /usr/lib/verity.d).
    install -D -m 0644 "$KEYS/trusted.crt" "$ROOTFS/usr/lib/verity.d/test.crt"
}

# Keep the three newest images of a kind: another run (another checkout state, another
# binary) may still boot an older one.
prune_old() {
    local pattern=$1
    find "$QEMU_WORK" -maxdepth 1 -name "$pattern" -printf '%T@ %p\n' | sort -rn | tail -n +4 |
        cut -d' ' -f2- | xargs -r rm -f --
}

# ---- main ----------------------------------------------------------------------------
exec 9>"$QEMU_WORK/.build.lock"
flock -w 3600 9 || die "timed out waiting for another guest build (lock $QEMU_WORK/.build.lock)"

t_start=$(now)
if [[ -n ${EXTMERGE_BIN:-} ]]; then
    BIN=$EXTMERGE_BIN
else
    log "building the static binary (make static)"
    make -s -C "$REPO" --no-print-directory static >&2
    BIN=$REPO/target/x86_64-unknown-linux-gnu/release/extmerge
fi
[[ -x $BIN ]] || die "no extmerge binary at $BIN"
file -b "$BIN" | grep -Eq 'static(-pie)? linked' || die "$BIN is not statically linked"

rootfs_ready || build_rootfs
# dracut's systemd-sysext module (dracut-ng with systemd >= 261's -sysroot units) is not in
# every suite's dracut: add it where it exists.
if ! compgen -G "$ROOTFS/usr/lib/dracut/modules.d/[0-9]*systemd-sysext" >/dev/null; then
    INITRD_ADD="extmerge extmerge-test-stubs"
fi
make_keys
KVER=$(sed -n 's/^kver=//p' "$STAMP")
bin_hash=$(sha256sum <"$BIN" | cut -d' ' -f1)
ours_hash=$(hash_paths "$REPO/units" "$REPO/dracut-module" "$QT_DIR/guest/rootfs")
initrd_key=$(printf '%s\n' "$rootfs_key" "$KVER" "$bin_hash" "$ours_hash" "v$INITRD_RECIPE_VERSION" \
    "$INITRD_DRIVERS" "$INITRD_OMIT" "$INITRD_ADD" | sha256sum | cut -c1-16)
cert_hash=$(sha256sum <"$KEYS/trusted.crt" | cut -d' ' -f1)
disk_key=$(printf '%s\n' "$rootfs_key" "$bin_hash" "$ours_hash" "v$DISK_RECIPE_VERSION" "$cert_hash" |
    sha256sum | cut -c1-16)
KERNEL=$QEMU_WORK/vmlinuz-$KVER
INITRD=$QEMU_WORK/initrd-$initrd_key.img
BASE=$QEMU_WORK/base-$disk_key.img

if [[ ! -f $KERNEL ]]; then
    cp "$ROOTFS/boot/vmlinuz-$KVER" "$KERNEL.tmp"
    mv "$KERNEL.tmp" "$KERNEL"
fi
if [[ ! -f $INITRD || ! -f $BASE ]]; then
    install_ours "$BIN"
fi

if [[ ! -f $INITRD ]]; then
    t0=$(now)
    log "dracut (in the guest rootfs) for $KVER: --add '$INITRD_ADD'"
    dlog=$QEMU_WORK/dracut.log
    rm -f "$ROOTFS/var/tmp/initrd.img"
    # shellcheck disable=SC2086 # word lists on purpose
    if ! chroot_run "$ROOTFS" dracut --force --quiet --no-hostonly --no-hostonly-cmdline \
        --kver "$KVER" --add "$INITRD_ADD" --omit "$INITRD_OMIT" \
        --add-drivers "$INITRD_DRIVERS" /var/tmp/initrd.img >"$dlog" 2>&1; then
        tail -n 40 "$dlog" >&2
        die "dracut failed (log: $dlog)"
    fi
    # systemd's -sysroot units are in the initrd (else the boots would not test the
    # double-merge guard) and masked by our module.
    chroot_run "$ROOTFS" lsinitrd /var/tmp/initrd.img >"$QEMU_WORK/lsinitrd.txt" 2>&1 ||
        die "lsinitrd failed (output: $QEMU_WORK/lsinitrd.txt)"
    for u in systemd-sysext-sysroot.service systemd-confext-sysroot.service; do
        # systemd < 261 has no -sysroot units: nothing to mask.
        [[ -f $ROOTFS/usr/lib/systemd/system/$u ]] || continue
        grep -qE " usr/lib/systemd/system/$u\$" "$QEMU_WORK/lsinitrd.txt" ||
            die "dracut's systemd-sysext module did not install $u (see $QEMU_WORK/lsinitrd.txt)"
        grep -qF "etc/systemd/system/$u -> /dev/null" "$QEMU_WORK/lsinitrd.txt" ||
            die "90extmerge did not mask $u in the initrd (see $QEMU_WORK/lsinitrd.txt)"
    done
    mv "$ROOTFS/var/tmp/initrd.img" "$INITRD.tmp"
    mv "$INITRD.tmp" "$INITRD"
    prune_old 'initrd-*.img'
    log "initramfs ready: $INITRD ($(du -h "$INITRD" | cut -f1)) in $(since "$t0") s"
fi

if [[ ! -f $BASE ]]; then
    t0=$(now)
    used_mb=$(du -s --one-file-system -B1M "$ROOTFS" | cut -f1)
    size_mb=$((used_mb * 3 / 2 + 512))
    rm -f "$BASE.tmp"
    truncate -s "${size_mb}M" "$BASE.tmp"
    mkfs.ext4 -q -F -L extmerge-root -d "$ROOTFS" "$BASE.tmp" ||
        die "mkfs.ext4 -d failed for $BASE"
    mv "$BASE.tmp" "$BASE"
    prune_old 'base-*.img'
    log "disk image ready: $BASE (${size_mb} MiB sparse, $(du -h "$BASE" | cut -f1) used) in $(since "$t0") s"
fi

check_nothing_mounted "$ROOTFS"
{
    echo "KVER=$KVER"
    echo "KERNEL=$KERNEL"
    echo "INITRD=$INITRD"
    echo "BASE=$BASE"
    echo "VERITY_KEYS=$KEYS"
    sed -n 's/^\(systemd\|dracut\)=/\U\1\E_VERSION=/p' "$STAMP"
} >"$ENV_FILE.tmp"
mv "$ENV_FILE.tmp" "$ENV_FILE"
# The same on stdout: a caller that boots uses exactly what this run built, even if a
# concurrent build (another binary) rewrites guest.env meanwhile.
cat "$ENV_FILE"
log "guest ready in $(since "$t_start") s: kernel $KVER, $(basename "$INITRD"), $(basename "$BASE")"
