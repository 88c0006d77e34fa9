#!/usr/bin/env bash
# Check dracut-module/90extmerge with Debian 12's dracut 059 (the boot tests use Debian
# unstable's dracut-ng): build a Debian 12 tree with dracut (cached in
# target/qemu/bookworm), make an initramfs for the boot-test guest's 6.12 kernel there
# with --add "extmerge extmerge-test-stubs", check its contents, and boot the first_boot
# scenario with it (a systemd 252 initrd switching into the Debian unstable guest).
#
# Not part of `make test` (it adds a Debian 12 debootstrap); run it when the dracut module
# changes: scripts/qemu-dracut059.sh
set -euo pipefail
LOG_TAG=dracut059
# shellcheck source=qemu-tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../qemu-tests/lib.sh"
need_root
need_cmds debootstrap unshare chroot

SUITE=bookworm
PACKAGES=systemd,systemd-sysv,udev,dracut,kmod,dmsetup,zstd
B=$QEMU_WORK/$SUITE
key=$(printf '%s\n' v1 "$SUITE" "$PACKAGES" | sha256sum | cut -c1-16)

"$QT_DIR/build-guest.sh"
# shellcheck source=/dev/null
source "$QEMU_WORK/guest.env"
ROOTFS=$QEMU_WORK/rootfs

exec 9>"$QEMU_WORK/.dracut059.lock"
flock -w 1800 9 || die "timed out waiting for another run"
if [[ ! -f $B/.ready || $(cat "$B/.ready") != "$key" ]]; then
    log "debootstrap Debian $SUITE with $PACKAGES (log: $QEMU_WORK/debootstrap-$SUITE.log)"
    rm -rf --one-file-system "$B" "$B.tmp"
    mkdir -p "$QEMU_WORK/cache/debs-$SUITE"
    if ! unshare -m --propagation private debootstrap --variant=minbase --include="$PACKAGES" \
        --cache-dir="$QEMU_WORK/cache/debs-$SUITE" "$SUITE" "$B.tmp" "$(debian_mirror)" \
        >"$QEMU_WORK/debootstrap-$SUITE.log" 2>&1; then
        tail -n 30 "$QEMU_WORK/debootstrap-$SUITE.log" >&2
        die "debootstrap $SUITE failed"
    fi
    echo "$key" >"$B.tmp/.ready"
    mv "$B.tmp" "$B"
fi
dracut_version=$(chroot "$B" dpkg-query -W -f='${Version}' dracut)
log "dracut $dracut_version, systemd $(chroot "$B" dpkg-query -W -f='${Version}' systemd)"

# What a package would install on a Debian 12 build host, plus the guest kernel's modules.
rm -rf "$B/usr/lib/modules/$KVER"
mkdir -p "$B/usr/lib/modules"
cp -a "$ROOTFS/usr/lib/modules/$KVER" "$B/usr/lib/modules/$KVER"
install -m 0755 "$ROOTFS/usr/bin/extmerge" "$B/usr/bin/extmerge"
install -m 0644 "$REPO"/units/extmerge-sysroot*.service "$B/usr/lib/systemd/system/"
for d in 90extmerge 91extmerge-test-stubs; do
    rm -rf "$B/usr/lib/dracut/modules.d/$d"
    cp -r "$REPO/dracut-module/$d" "$B/usr/lib/dracut/modules.d/$d"
done

out=$QEMU_WORK/dracut059-initrd.img
dlog=$QEMU_WORK/dracut059.log
rm -f "$B/var/tmp/initrd.img"
if ! chroot_run "$B" dracut --force --no-hostonly --no-hostonly-cmdline --kver "$KVER" \
    --add "extmerge extmerge-test-stubs" \
    --omit "plymouth i18n btrfs nfs iscsi nbd multipath mdraid lvm crypt resume usrmount network" \
    --add-drivers "virtio_pci virtio_blk ext4 loop overlay squashfs erofs" \
    /var/tmp/initrd.img >"$dlog" 2>&1; then
    tail -n 40 "$dlog" >&2
    die "dracut $dracut_version failed (log: $dlog)"
fi
if grep -iE 'error|fail|warn' "$dlog" >&2; then
    log "(the lines above are from dracut's log $dlog)"
fi
chroot_run "$B" lsinitrd /var/tmp/initrd.img >"$QEMU_WORK/lsinitrd-dracut059.txt" 2>&1
for want in usr/bin/extmerge usr/lib/systemd/system/extmerge-sysroot.service \
    etc/systemd/system/initrd.target.wants/extmerge-sysroot.service \
    etc/systemd/system/initrd.target.wants/extmerge-sysroot-early.service \
    /kernel/drivers/block/loop.ko /kernel/fs/overlayfs/overlay.ko /kernel/fs/erofs/erofs.ko \
    /kernel/fs/squashfs/squashfs.ko /kernel/drivers/md/dm-verity.ko; do
    grep -qF "$want" "$QEMU_WORK/lsinitrd-dracut059.txt" ||
        die "the dracut $dracut_version initramfs lacks $want (listing: $QEMU_WORK/lsinitrd-dracut059.txt)"
done
grep -qE '^(dm|extmerge|extmerge-test-stubs)$' "$QEMU_WORK/lsinitrd-dracut059.txt" ||
    die "dracut module list lacks extmerge"
mv "$B/var/tmp/initrd.img" "$out"
log "initramfs by dracut $dracut_version: $out ($(du -h "$out" | cut -f1)); modules: $(sed -n '/^dracut modules:/,/^=/p' "$QEMU_WORK/lsinitrd-dracut059.txt" | grep -cv -e '^dracut modules:' -e '^=') incl. $(grep -xE 'dm|extmerge|extmerge-test-stubs' "$QEMU_WORK/lsinitrd-dracut059.txt" | tr '\n' ' ')"
check_nothing_mounted "$B"

EXTMERGE_QEMU_INITRD=$out EXTMERGE_QEMU_RUN=first_boot-dracut059 "$QT_DIR/run-scenario.sh" first_boot
log "ok: the dracut $dracut_version initramfs boots the first_boot scenario"
