#!/bin/bash
# refresh_skip, every boot of the disk: extmerge merged in the initrd, and nothing in the
# booted system merges again. Flatcar's /etc (Mutable=auto, /etc its own upper dir).
. ./checklib.sh

check_merged_in_initrd /etc /usr /opt
check_eq "/usr/bin/hello-dir runs (directory sysext)" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_eq "/usr/bin/hello-squashfs runs (squashfs sysext)" "hello from hello-squashfs" "$(/usr/bin/hello-squashfs 2>&1)"
check "/etc/demo-conf/greeting.conf from the confext" grep -q '^greeting=' /etc/demo-conf/greeting.conf
check_etc_self_upper

# The stock units ran at boot (enabled in the guest, as on Flatcar) and found systemd's
# origin files, written by extmerge, equal to what they would merge.
check_stock_refresh_skipped systemd-sysext.service systemd-confext.service
check_no_reload

# Again, on demand: the stock refresh (ExecReload=systemd-*ext refresh) and extmerge's own
# refresh leave every mount in place. (`systemctl restart` would run ExecStop=…unmerge
# first, which must remount; reload is the refresh path.)
before=$(mount_ids /usr /opt /etc)
for u in systemd-sysext.service systemd-confext.service; do
    n0=$(stock_skip_ts | wc -l)
    check "systemctl reload $u (systemd's refresh)" systemctl reload "$u"
    # journald may store the line a moment after systemctl returns
    for _ in $(seq 1 10); do
        (($(stock_skip_ts | wc -l) > n0)) && break
        sleep 0.5
    done
    check_eq "$u skipped again on reload (one more \"$SYSTEMD_SKIP_MSG\")" $((n0 + 1)) "$(stock_skip_ts | wc -l)"
done
check_eq "/usr, /opt and /etc keep their mount IDs across the stock refresh" "$before" "$(mount_ids /usr /opt /etc)"
rc=0
refresh_out=$(extmerge refresh 2>&1) || rc=$?
check_eq "extmerge refresh in the booted system exits 77 (nothing changed)" 77 "$rc"
[[ $rc == 77 ]] || echo "$refresh_out" | diag
check_eq "/usr, /opt and /etc keep their mount IDs across extmerge refresh" "$before" "$(mount_ids /usr /opt /etc)"
check_no_reload
finish
