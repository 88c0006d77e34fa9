#!/bin/bash
# dracut module "extmerge": merge systemd system and configuration extensions onto
# /sysroot in the initrd with the static extmerge binary, in two stages:
# extmerge-sysroot-early.service (confexts, before Ignition) and extmerge-sysroot.service
# (/var from the kernel command line, Flatcar selection, confexts, then sysexts).
#
# systemd's own systemd-sysext-sysroot.service and systemd-confext-sysroot.service
# (systemd >= 261, installed by dracut's systemd-sysext module) would merge the same
# hierarchies a second time: this module masks them in the initrd.
#
# Opt-in: dracut --add extmerge, or add_dracutmodules+=" extmerge " in a dracut.conf.d
# file. Written for dracut 059 (Debian 12) and dracut-ng (Debian unstable): it uses only
# helpers both have (instmods, inst_simple, inst_dir, find_binary, dinfo, dfatal).
#
# The binary and the unit are taken from the module directory when present (a
# development build copied next to this file), else from where a package installs
# them: /usr/bin/extmerge and $systemdsystemunitdir/extmerge-sysroot{,-early}.service.

# called by dracut
check() {
    # Only when asked for: it changes what the initrd does to /sysroot.
    return 255
}

# called by dracut
depends() {
    local deps="systemd"
    # dm-verity images need device-mapper (dmsetup and its udev rules). Add it only
    # when that module exists and can be installed here, so that its absence never
    # makes this module fail.
    local d
    for d in "${dracutbasedir:-/usr/lib/dracut}"/modules.d/[0-9][0-9]dm; do
        if [[ -d $d ]] && find_binary dmsetup >/dev/null 2>&1; then
            deps+=" dm"
        fi
        break
    done
    echo "$deps"
    return 0
}

# called by dracut
installkernel() {
    # Forced (not host-only): the images to merge are not known when the initrd is
    # built. A module the kernel has built in (or lacks) is not an error.
    # af_alg/algif_hash: libcryptsetup's kernel crypto backend (verity activation).
    local m
    for m in loop overlay squashfs erofs ext4 btrfs xfs dm-verity af_alg algif_hash; do
        hostonly='' instmods "$m" || dinfo "extmerge: kernel module $m not available (built in or missing)"
    done
    return 0
}

# Print the source to install from: the module directory's copy if there is one, else
# the build host's (package) path. Host paths are checked below $dracutsysrootdir but
# printed without it, the way inst_simple wants them.
_extmerge_src() {
    local in_moddir=$1 on_host=$2
    if [[ -e $in_moddir ]]; then
        echo "$in_moddir"
    elif [[ -e ${dracutsysrootdir-}$on_host ]]; then
        echo "$on_host"
    else
        return 1
    fi
}

# called by dracut
install() {
    local bin unit u confdir
    bin=$(_extmerge_src "$moddir/extmerge" /usr/bin/extmerge) || {
        dfatal "extmerge: no binary: put it at $moddir/extmerge or /usr/bin/extmerge"
        return 1
    }
    # Static executable: nothing to resolve, so inst_simple rather than inst_binary.
    inst_simple "$bin" /usr/bin/extmerge
    for u in extmerge-sysroot-early.service extmerge-sysroot.service; do
        unit=$(_extmerge_src "$moddir/$u" "$systemdsystemunitdir/$u") || {
            dfatal "extmerge: no $u next to this module or in $systemdsystemunitdir"
            return 1
        }
        inst_simple "$unit" "$systemdsystemunitdir/$u"
        $SYSTEMCTL -q --root "$initdir" add-wants initrd.target "$u"
    done
    # No double merge: mask systemd's -sysroot units, whether or not dracut's
    # systemd-sysext module (ordered before this one) installed and enabled them. A mask is
    # a link to /dev/null in the initrd's /etc, which beats any enablement link.
    confdir=${systemdsystemconfdir:-/etc/systemd/system}
    inst_dir "$confdir"
    for u in systemd-sysext-sysroot.service systemd-confext-sysroot.service; do
        ln -sfn /dev/null "$initdir$confdir/$u"
    done
}
