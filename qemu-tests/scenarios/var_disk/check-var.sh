# Checks shared by both boots of the var_disk scenario (sourced after checklib.sh).
# shellcheck shell=bash
check_var_disk() {
    local spec=$1 src
    check_journal "extmerge mounted /var in the initrd for $spec" "at /sysroot/var for $spec." \
        -u extmerge-sysroot.service
    src=$(findmnt -n -o SOURCE --mountpoint /var)
    # blkid -p probes the device itself: lsblk reads udev's database, which a loaded guest may
    # not have filled for the disk yet when the checks start.
    check_eq "/var is the GPT partition labelled extvar-part" "extvar-part ext4 extvar" \
        "$(blkid -p -o export "$src" 2>&1 | awk -F= '{ v[$1] = $2 }
            END { print v["PART_ENTRY_NAME"], v["TYPE"], v["LABEL"] }')"
    check_single_overlay /var
    check_eq "var.mount is active in the booted system" "active" "$(systemctl is-active var.mount 2>&1)"
    check_journal "the initrd used the sysext on the separate /var" \
        "Using sysext 'on-var' (/var/lib/extensions/on-var.raw" "${EXTMERGE_UNITS[@]}"
    check_journal "the initrd used the confext on the separate /var" \
        "Using confext 'var-conf' (/var/lib/confexts/var-conf" "${EXTMERGE_UNITS[@]}"
    check_merged_in_initrd /etc /usr
    check_eq "the sysext from /var runs" "hello from the separate /var" "$(on-var 2>&1)"
    check_eq "the confext from /var is in /etc" "stored=on-the-var-disk" "$(cat /etc/var-conf/where.conf 2>&1)"
    check_etc_self_upper
    check_sysroot_units_not_run
    check_stock_refresh_skipped systemd-sysext.service systemd-confext.service
    check_no_reload
}
