# Checks for the sample extensions of qemu-tests/extensions/ as the first_boot scenario
# places them (hello-dir, hello-squashfs, hello-erofs via an /opt link, demo-conf).
# Sourced after checklib.sh.
# shellcheck shell=bash

check_samples_merged() {
    # (i) merged in the initrd, before PID 1 re-read the real root's /etc
    check_merged_in_initrd /etc /usr /opt
    check_journal "extmerge-sysroot.service finished in the initrd" \
        "Finished extmerge-sysroot.service" _PID=1
    # Ordered after the Ignition stubs, as after Flatcar's real units.
    if [[ ${EXTMERGE_TEST_BOOT:-} == 1 ]]; then
        check_order "Finished ignition-files.service" "Starting extmerge-sysroot.service"
    fi
    check_order "Finished initrd-setup-root-after-ignition.service" "Starting extmerge-sysroot.service"
    check_overlay /usr ro
    check_overlay /opt ro
    # Mutable mode "auto" with the Flatcar link: /etc is its own upper directory (the
    # paths are those of the initrd, where the real root was /sysroot).
    check_etc_self_upper

    # (ii) tools from each sysext (directory, squashfs, erofs through an /opt link) run
    check_eq "/usr/bin/hello-dir runs (directory sysext)" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
    check_eq "/usr/bin/hello-squashfs runs (squashfs sysext)" "hello from hello-squashfs" "$(/usr/bin/hello-squashfs 2>&1)"
    check_eq "/usr/bin/hello-erofs runs (erofs sysext via an absolute link)" "hello from hello-erofs" "$(/usr/bin/hello-erofs 2>&1)"
    check "/opt/hello-squashfs/data.txt from the squashfs sysext" test -f /opt/hello-squashfs/data.txt

    # (iii) a unit enabled inside a sysext was started by PID 1 without a daemon-reload
    check_eq "hello-sysext.service (from a sysext's .wants) is active" active "$(systemctl is-active hello-sysext.service 2>&1)"
    check_eq "hello-sysext.service ran the sysext's tool" "hello from hello-dir" "$(cat /run/hello-sysext.out 2>&1)"
    check_no_reload

    # (iv) the confext's file is in /etc
    check "/etc/demo-conf/greeting.conf from the confext" \
        grep -q '^greeting=hello from demo-conf$' /etc/demo-conf/greeting.conf

    # systemd's own tools see extmerge's merge as theirs
    check "systemd-sysext status lists hello-dir, hello-squashfs, hello-erofs" \
        sh -c 's=$(systemd-sysext status --no-pager 2>&1); for e in hello-dir hello-squashfs hello-erofs; do echo "$s" | grep -qw -- "$e" || { echo "$s"; exit 1; }; done'
    check "systemd-confext status lists demo-conf" \
        sh -c 's=$(systemd-confext status --no-pager 2>&1); echo "$s" | grep -qw demo-conf || { echo "$s"; exit 1; }'
}
