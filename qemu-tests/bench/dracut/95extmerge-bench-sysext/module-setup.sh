#!/bin/bash
# dracut module "extmerge-bench-sysext" (boot benchmark only, qemu-tests/bench/): systemd's
# own initrd merge, systemd-confext-sysroot.service and systemd-sysext-sysroot.service
# (`systemd-{conf,sys}ext --root=/sysroot refresh`), for the variant of the benchmark guest
# that does not use extmerge.
#
# This is dracut-ng's 11systemd-sysext module (dracut 112) with one change: it does not
# depend on systemd-veritysetup, whose binaries are in Debian's systemd-cryptsetup
# package, which the test guest does not have. It installs the same units and binaries,
# enables the same units, and asks for the dlopen()ed libraries systemd-veritysetup's
# module would add (libcryptsetup, libcrypto) plus blkid and mount, which systemd-sysext
# needs to dissect images (the systemd and udev modules already ask for those two). Only
# systemd-veritysetup and its generator are missing; an unprotected image never needs them.

# called by dracut
check() {
    require_binaries systemd-sysext systemd-confext || return 1
    return 255
}

# called by dracut
depends() {
    echo systemd dm
    return 0
}

# called by dracut
config() {
    add_dlopen_features+=" libsystemd-shared-*.so:blkid,mount,cryptsetup,libcrypto "
}

# called by dracut
installkernel() {
    hostonly='' instmods erofs ext4 squashfs loop overlay dm-verity
}

# called by dracut
install() {
    local _suffix='' i
    # systemd >= v258
    [[ -e "${dracutsysrootdir-}$systemdsystemunitdir"/systemd-sysext-initrd.service ]] && _suffix="-initrd"

    inst_multiple -o \
        "$systemdsystemunitdir"/systemd-confext${_suffix}.service \
        "$systemdsystemunitdir/systemd-confext${_suffix}.service.d/*.conf" \
        "$systemdsystemunitdir"/systemd-confext-sysroot.service \
        "$systemdsystemunitdir/systemd-confext-sysroot.service.d/*.conf" \
        "$systemdsystemunitdir"/systemd-sysext${_suffix}.service \
        "$systemdsystemunitdir/systemd-sysext${_suffix}.service.d/*.conf" \
        "$systemdsystemunitdir"/systemd-sysext-sysroot.service \
        "$systemdsystemunitdir/systemd-sysext-sysroot.service.d/*.conf" \
        "$systemdsystemunitdir"/initrd.target.wants/systemd-confext${_suffix}.service \
        "$systemdsystemunitdir"/initrd.target.wants/systemd-sysext${_suffix}.service \
        systemd-confext systemd-sysext

    for i in \
        systemd-confext.service \
        systemd-sysext.service \
        systemd-confext-sysroot.service \
        systemd-sysext-sysroot.service; do
        if [[ -e "$initdir$systemdsystemunitdir"/"$i" ]]; then
            $SYSTEMCTL -q --root "$initdir" enable "$i"
        fi
    done
}
