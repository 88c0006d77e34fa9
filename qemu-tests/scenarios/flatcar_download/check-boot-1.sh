#!/bin/bash
# Missing Flatcar images, boot 1: the stub downloader placed what flatcar-select --dry-run
# --json reported missing, before extmerge-sysroot.service selected and merged.
. ./checklib.sh

json='[{"name":"oem-qemu","version":"4000.0.0","path":"/oem/sysext/oem-qemu-4000.0.0.raw","kind":"oem"},{"name":"flatcar-zfs","version":"4000.0.0","path":"/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw","kind":"official"}]'
check_journal "the downloader read extmerge's report of both missing images" \
    "downloader-stub: missing according to extmerge: $json" -u extmerge-test-downloader.service
for p in /oem/sysext/oem-qemu-4000.0.0.raw /etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw; do
    check_journal "the downloader placed $p" "downloader-stub: placed $p" -u extmerge-test-downloader.service
done
check_order "Finished extmerge-test-downloader.service" "Starting extmerge-sysroot.service"

# The OEM partition is its own disk, mounted before the downloader (its ExecStartPre=, as
# Flatcar's units) and started again, already mounted, by stage 2's oem-mount step.
check_eq "/oem is the partition labelled OEM" "OEM" "$(findmnt -n -o LABEL --mountpoint /oem 2>&1)"
check_journal "the OEM mount started in the initrd" "Mounted sysroot-oem.mount" _PID=1
check_journal "stage 2's oem-mount step found it started" \
    "The start job of sysroot-oem.mount finished: done." -u extmerge-sysroot.service

# The selection found everything: no missing-image line, both links, both merged in the initrd.
n=$(journal -u extmerge-sysroot.service | grep -c "Missing .* extension image" || true)
check_eq "no missing-image line from the selection" 0 "$n"
check_eq "flatcar-zfs.raw links the placed image" "/etc/flatcar/sysext/flatcar-zfs-4000.0.0.raw" \
    "$(readlink /etc/extensions/flatcar-zfs.raw 2>&1)"
check_eq "oem-qemu.raw links the image on the OEM partition" "/oem/sysext/oem-qemu-4000.0.0.raw" \
    "$(readlink /etc/extensions/oem-qemu.raw 2>&1)"
check_merged_in_initrd /usr
check_eq "zfs from flatcar-zfs runs" "zfs for 4000.0.0" "$(zfs-flatcar 2>&1)"
check_eq "the OEM sysext runs" "oem-qemu for 4000.0.0" "$(oem-qemu 2>&1)"
check_journal "extmerge-sysroot.service finished" "Finished extmerge-sysroot.service" _PID=1
check_stock_refresh_skipped systemd-sysext.service
check_no_reload
# Each initrd unit ran its steps in one process (stage 2: oem-mount, mount-var, flatcar-select,
# both refreshes).
check_one_process extmerge-sysroot-early.service
check_one_process extmerge-sysroot.service
finish
