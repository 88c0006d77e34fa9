#!/bin/bash
# dracut module "extmerge-test-stubs": Flatcar-like stand-ins for the initrd units that
# are not ours, for the QEMU boot tests only (qemu-tests/). Never ship it.
#
#   ignition-files.service                   first boot (flatcar.first_boot on the kernel
#                                            command line): mounts the disks the config
#                                            disk's `mounts` lists (e.g. /var) and copies
#                                            its tree root/ into /sysroot, the way Ignition
#                                            writes /etc/extensions/*.raw, links, confexts
#   initrd-setup-root.service                every boot, before Ignition and extmerge's
#                                            stage 1: creates Flatcar's mutable-/etc link
#                                            /var/lib/extensions.mutable/etc -> /etc
#   initrd-setup-root-after-ignition.service every boot, after Ignition: the same (a
#                                            separate /var Ignition mounted lacks it)
#   extmerge-test-rerun.service              with extmerge_test.rerun on the command line:
#                                            restarts extmerge's units after they ran and
#                                            forces a refresh, logging the overlays stacked
#                                            on /sysroot/etc and /sysroot/usr
#   extmerge-test-emergency.service          in emergency.target: reports "not ok" and a
#                                            journal excerpt on the results port (ttyS1)
#                                            and powers off, so a failed boot fails fast
#   sysroot-oem.mount                        with extmerge_test.oem_disk: the partition
#                                            labelled OEM at /sysroot/oem (Flatcar's unit
#                                            bind-mounts /oem); extmerge-test-oem-generator
#                                            names the disk only then
#   extmerge-test-downloader.service         with extmerge_test.downloader: before
#                                            extmerge-sysroot.service, places the images
#                                            `flatcar-select --dry-run --json` reports
#                                            missing, from the disk labelled "downloads"
#   extmerge-test-mountids.service           with extmerge_test.mountids: logs the
#                                            mount IDs of /sysroot/etc, /sysroot/usr and
#                                            /sysroot/var before initrd-parse-etc.service
#   extmerge-bench-cpu.service               with extmerge_bench.variant (the boot
#                                            benchmark): logs the merge units' CPU time
# The stubs are ordered like the real units (flatcar-boot-flow.md §1.3).

# called by dracut
check() {
    return 255
}

# called by dracut
depends() {
    echo systemd
    return 0
}

# called by dracut
install() {
    inst_multiple cp mv mkdir ln mount umount sed grep awk tail findmnt udevadm journalctl systemctl
    local u
    for u in ignition-files.service initrd-setup-root.service initrd-setup-root-after-ignition.service \
        extmerge-test-rerun.service extmerge-test-emergency.service sysroot-oem.mount \
        extmerge-test-downloader.service extmerge-bench-cpu.service extmerge-test-mountids.service; do
        inst_simple "$moddir/$u" "$systemdsystemunitdir/$u"
    done
    inst_script "$moddir/ignition-stub.sh" /usr/libexec/extmerge-test/ignition-stub
    inst_script "$moddir/setup-root-stub.sh" /usr/libexec/extmerge-test/setup-root-stub
    inst_script "$moddir/emergency-report.sh" /usr/libexec/extmerge-test/emergency-report
    inst_script "$moddir/rerun.sh" /usr/libexec/extmerge-test/rerun
    inst_script "$moddir/downloader-stub.sh" /usr/libexec/extmerge-test/downloader-stub
    inst_script "$moddir/bench-cpu.sh" /usr/libexec/extmerge-test/bench-cpu
    inst_script "$moddir/mountids.sh" /usr/libexec/extmerge-test/mountids
    inst_script "$moddir/oem-generator.sh" \
        "${systemdutildir:-/usr/lib/systemd}/system-generators/extmerge-test-oem-generator"
    $SYSTEMCTL -q --root "$initdir" add-wants initrd.target \
        ignition-files.service initrd-setup-root.service initrd-setup-root-after-ignition.service \
        extmerge-test-rerun.service extmerge-test-downloader.service extmerge-bench-cpu.service \
        extmerge-test-mountids.service
    $SYSTEMCTL -q --root "$initdir" add-wants emergency.target extmerge-test-emergency.service
}
