# Checks shared by both boots of flatcar_faithful (sourced after checklib.sh).
# shellcheck shell=bash

# using_signed CLASS NAME DEST: extmerge's initrd line for NAME says it is a signed erofs DDI
# with the root hash the harness recorded for DEST, and its dm-verity device survived.
using_signed() {
    local class=$1 name=$2 rh line
    rh=$(roothash_of "$3")
    line=$(initrd_lines "Using $class '$name' (" | head -n1)
    if [[ -n $rh && $line == *", erofs, signed root hash $rh"* ]]; then
        ok "$class $name: a signed erofs DDI, used in the initrd (root hash $rh)"
    else
        not_ok "$class $name: a signed erofs DDI with root hash ${rh:-?} used in the initrd: ${line:-no line}"
    fi
    check_dm_verity "$class $name's dm-verity device survived switch-root" "$rh"
}

# using_unsigned CLASS NAME PATH: used in the initrd from PATH, a squashfs without verity.
using_unsigned() {
    check_journal "$1 $2 used in the initrd from $3" "Using $1 '$2' ($3, squashfs, unprotected)" \
        "${EXTMERGE_UNITS[@]}"
}

check_faithful() {
    # The root as Flatcar lays it out.
    check_eq "/usr/lib/systemd/confext.conf sets Mutable=auto" "Mutable=auto" \
        "$(grep -x 'Mutable=auto' /usr/lib/systemd/confext.conf 2>&1)"
    check_eq "the default confext is required" "Require=00-flatcar-default" \
        "$(grep -x 'Require=00-flatcar-default' /usr/lib/systemd/confext.conf.d/50-require-default.conf 2>&1)"
    check "the signing certificate is in /usr/lib/verity.d" test -s /usr/lib/verity.d/test.crt
    check_eq "the mutable-/etc link on the separate /var" "/etc" "$(readlink /var/lib/extensions.mutable/etc 2>&1)"
    check_eq "the OEM partition is /oem" "OEM" "$(findmnt -n -o LABEL --mountpoint /oem 2>&1)"
    # Nothing else starts the OEM mount in this initrd: stage 2's first step did, over PID 1's
    # bus (no systemctl process), before its selection read the OEM sysext (merged below).
    check_journal "stage 2's oem-mount step started sysroot-oem.mount" \
        "The start job of sysroot-oem.mount finished: done." -u extmerge-sysroot.service

    # Everything merged in the initrd, before PID 1 read the real root's /etc.
    check_merged_in_initrd /etc /usr
    using_signed confext 00-flatcar-default /usr/lib/confexts/00-flatcar-default.raw
    using_signed sysext docker-flatcar /usr/share/flatcar/sysext/docker-flatcar.raw
    using_signed sysext flatcar-zfs /etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw
    using_signed sysext oem-qemu /sysext/oem-qemu-4000.0.0.raw
    using_unsigned sysext user-tool /etc/extensions/user-tool.raw
    using_unsigned sysext on-var /var/lib/extensions/on-var.raw
    using_unsigned confext user-conf /var/lib/confexts/user-conf.raw
    check_eq "flatcar-zfs.raw links the image for this version" "/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw" \
        "$(readlink /etc/extensions/flatcar-zfs.raw 2>&1)"
    check_eq "oem-qemu.raw links the OEM partition's image" "/oem/sysext/oem-qemu-4000.0.0.raw" \
        "$(readlink /etc/extensions/oem-qemu.raw 2>&1)"
    check_eq "docker (built in, linked by the default confext) runs" "docker (built in)" "$(docker-flatcar 2>&1)"
    check_eq "zfs (enabled-sysext.conf) runs" "zfs for 4000.0.0" "$(zfs-flatcar 2>&1)"
    check_eq "the OEM sysext runs" "oem-qemu for 4000.0.0" "$(oem-qemu 2>&1)"
    check_eq "the user sysext runs" "user tool from Ignition" "$(user-tool 2>&1)"
    check_eq "the sysext on the separate /var runs" "hello from the separate /var" "$(on-var 2>&1)"
    check_eq "the default confext's file is in /etc" "version=1" "$(cat /etc/flatcar-default/defaults.conf 2>&1)"
    check_eq "the user confext's file is in /etc" "from=ignition" "$(cat /etc/user-conf/site.conf 2>&1)"
    for n in docker-flatcar flatcar-zfs oem-qemu user-tool on-var; do check_status_lists sysext "$n"; done
    for n in 00-flatcar-default user-conf; do check_status_lists confext "$n"; done
    check_etc_self_upper
    check_single_overlay /etc /usr /var
    check_journal "extmerge wrote the record this root's systemd (262) reads" \
        "Writing the systemd 260+ refresh-skip record" "${EXTMERGE_UNITS[@]}"

    # /var: the VAR disk, adopted by the booted system's var.mount.
    check_eq "/var is the disk labelled VAR" "VAR" "$(findmnt -n -o LABEL --mountpoint /var 2>&1)"
    check_eq "var.mount (Ignition's) is active" "active" "$(systemctl is-active var.mount 2>&1)"

    # The booted system: the stock refresh units skip, merge nothing (kola's
    # confext.skiprefresh), and the mounts are still the initrd's.
    check_stock_refresh_skipped systemd-sysext.service systemd-confext.service
    check_stock_refresh_merged_nothing systemd-sysext.service systemd-confext.service
    check_mount_ids_since_initrd /etc /usr /var
    check_sysroot_units_not_run
    check_no_reload
}
