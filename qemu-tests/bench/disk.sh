# Sourced by qemu-tests/bench/boot-bench.sh: the benchmark's disk image, build-guest.sh's
# image plus the extensions (ext_names/ext_kinds, CONFEXT, WORK and BASE from the caller).
# shellcheck shell=bash

# 128 KiB of pseudo-random (incompressible, reproducible) bytes for SEED.
blob() { { openssl enc -aes-128-ctr -nosalt -pass "pass:$1" -pbkdf2 -in /dev/zero 2>/dev/null || true; } | head -c 131072; }

make_sysext_tree() {
    local name=$1 d=$2 j
    mkdir -p "$d/usr/lib/extension-release.d" "$d/usr/bin" "$d/usr/share/$name" "$d/opt/$name"
    echo "ID=debian" >"$d/usr/lib/extension-release.d/extension-release.$name"
    printf '#!/bin/sh\necho "bench %s"\n' "$name" >"$d/usr/bin/$name"
    chmod 0755 "$d/usr/bin/$name"
    for ((j = 0; j < 16; j++)); do
        blob "$name-$j" >"$d/usr/share/$name/blob-$(printf '%02d' "$j")"
    done
    echo "$name" >"$d/opt/$name/marker"
}

build_disk() {
    local out=$1 t0 stage tree i name kind
    t0=$(now)
    stage=$WORK/.disk-stage
    rm -rf "$stage"
    mkdir -p "$stage/root/etc/extensions" "$stage/root/var/lib/extensions" \
        "$stage/root/var/lib/confexts" "$stage/root/var/lib/extensions.mutable" "$stage/src"
    for i in "${!ext_names[@]}"; do
        name=${ext_names[$i]} kind=${ext_kinds[$i]}
        tree=$stage/src/$name
        make_sysext_tree "$name" "$tree"
        case $kind in
            squashfs)
                mksquashfs "$tree" "$stage/root/var/lib/extensions/$name.raw" -all-root -noappend -quiet >/dev/null ||
                    die "mksquashfs $name failed"
                ;;
            erofs)
                mkfs.erofs --quiet --all-root "$stage/root/var/lib/extensions/$name.raw" "$tree" >/dev/null ||
                    die "mkfs.erofs $name failed"
                ;;
            dir)
                cp -a "$tree" "$stage/root/etc/extensions/$name"
                ;;
        esac
    done
    tree=$stage/src/$CONFEXT
    mkdir -p "$tree/etc/extension-release.d" "$tree/etc/$CONFEXT"
    echo "ID=_any" >"$tree/etc/extension-release.d/extension-release.$CONFEXT"
    echo "bench=$CONFEXT" >"$tree/etc/$CONFEXT/bench.conf"
    mksquashfs "$tree" "$stage/root/var/lib/confexts/$CONFEXT.raw" -all-root -noappend -quiet >/dev/null ||
        die "mksquashfs $CONFEXT failed"
    # Flatcar's mutable /etc (what initrd-setup-root-after-ignition.service makes), on the
    # disk already: both variants merge /etc the same way (Mutable=auto in the guest's
    # confext.conf) although systemd's units run before that stub.
    ln -s /etc "$stage/root/var/lib/extensions.mutable/etc"
    chown -R 0:0 "$stage/root"
    du -b "$stage"/root/var/lib/extensions/*.raw "$stage"/root/var/lib/confexts/*.raw >"$out.sizes"
    du -sb "$stage"/root/etc/extensions/* >>"$out.sizes"
    sed -i "s|$stage/root||" "$out.sizes"

    rm -f "$out.tmp"
    cp --sparse=always "$BASE" "$out.tmp"
    mkdir -p "$stage/mnt"
    # shellcheck disable=SC2016 # expanded by the inner shell
    unshare -m --propagation private -- /bin/sh -euc '
        mount -o loop "$1" "$2/mnt"
        cp -a "$2/root/." "$2/mnt/"
        umount "$2/mnt"
    ' sh "$out.tmp" "$stage" || die "could not add the extensions to $out.tmp"
    rm -rf "$stage"
    mv "$out.tmp" "$out"
    log "disk image ready: $out in $(since "$t0") s"
}
