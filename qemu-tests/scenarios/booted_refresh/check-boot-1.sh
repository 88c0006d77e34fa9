#!/bin/bash
# booted_refresh: extmerge as the booted system's refresh, through systemd's own units.
#   1. the drop-ins are linked: systemd-{sysext,confext}.service run extmerge, and at boot they
#      skipped (the initrd's merge is kept: one overlay each, PID 1 never reloaded);
#   2. a sysext with a service (Upholds=), a directory user confext and a broken image are
#      placed; `systemctl restart systemd-sysext systemd-confext` refreshes while a reader
#      loops over /usr and /etc: no read fails, the service runs after the reload, the broken
#      image is skipped and the rest merged;
#   3. a second restart with nothing changed keeps every mount (same mount IDs);
#   4. Varlink: systemd-sysext.socket (Accept=yes, extmerge behind it) and exec: answer List,
#      and a Refresh through the socket skips.
. ./checklib.sh

check_merged_in_initrd /etc /usr
check_booted_units_skipped
check_single_overlay /usr /etc
check_no_reload

# Files of /usr and /etc that exist before and after the restarts: the base OS, the sysext, the
# confext, the real /etc.
READ=(/usr/bin/ls=$'\x7fELF' /usr/bin/hello-dir='#!/bin/sh' /etc/demo-conf/greeting.conf='# shipped'
    /etc/hostname=extmerge-guest)

# ---- restart 1: new extensions
before=$(mount_ids /usr /etc)
cp -a /var/lib/extmerge-test-pending/booted-svc /etc/extensions/booted-svc
mkdir -p /var/lib/confexts
cp -a /var/lib/extmerge-test-pending/user-conf /var/lib/confexts/user-conf
cp /var/lib/extmerge-test-pending/broken.raw /etc/extensions/broken.raw
since=$(date +%s)
run_with_reader "restart 1 (new sysext, confext and a broken image)" "${READ[@]}" -- \
    systemctl restart systemd-sysext.service systemd-confext.service
after=$(mount_ids /usr /etc)
echo "mount IDs before: $before; after restart 1: $after" | diag
for h in /usr /etc; do
    check "restart 1 replaced $h (a new overlay)" test "$(mount_id "$h")" != "$(sed -n "s|.*$h=\([0-9]*\).*|\1|p" <<<"$before")"
done
check_single_overlay /usr /etc
check_eq "the new sysext's file is in /usr" 1 "$(grep -c 'booted-svc running' /usr/bin/booted-svc 2>&1)"
check_eq "the user confext's file is in /etc" "from=user-conf" "$(cat /etc/user-conf/site.conf 2>&1)"
check_eq "the earlier sysext still runs" "hello from hello-dir" "$(/usr/bin/hello-dir 2>&1)"
check_status_lists sysext booted-svc
check_status_lists confext user-conf
check_journal "extmerge reloaded PID 1 for booted-svc (EXTENSION_RELOAD_MANAGER=1)" \
    "Reloaded the service manager" -u systemd-sysext.service
ok_svc=""
for _ in $(seq 1 30); do
    [[ $(systemctl is-active booted-svc.service) == active ]] && ok_svc=1 && break
    sleep 1
done
check_eq "booted-svc.service (Upholds= from the new sysext) runs after the reload" 1 "$ok_svc"
check_journal "booted-svc.service printed its line" "booted-svc running" -u booted-svc.service
skipped=$(journalctl --no-pager -o cat -u systemd-sysext.service --since "@$since" |
    grep -m1 "Skipping sysext 'broken' (/etc/extensions/broken.raw): cannot open image" || true)
if [[ -n $skipped ]]; then
    ok "extmerge named the broken image and skipped it: ${skipped:0:200}"
else
    not_ok "extmerge named the broken image: no \"Skipping sysext 'broken' … cannot open image\" from systemd-sysext.service"
fi

# ---- restart 2: nothing changed
mids=$(mount_ids /usr /opt /etc)
run_with_reader "restart 2 (nothing changed)" "${READ[@]}" -- \
    systemctl restart systemd-sysext.service systemd-confext.service
check_eq "restart 2 remounted nothing (mount IDs of /usr /opt /etc kept)" "$mids" "$(mount_ids /usr /opt /etc)"
echo "mount IDs before and after restart 2: $mids" | diag

# ---- Varlink
check "systemd-sysext.socket starts" systemctl start systemd-sysext.socket
list=$(varlinkctl call --more /run/systemd/io.systemd.sysext io.systemd.sysext.List '{}' 2>&1)
for n in hello-dir booted-svc broken; do
    if grep -q "\"Name\":\"$n\"" <<<"$list"; then ok "Varlink List over systemd-sysext.socket names $n"; else
        not_ok "Varlink List over systemd-sysext.socket names $n: $(tr '\n' ' ' <<<"$list" | cut -c1-300)"
    fi
done
check_eq "extmerge answers behind systemd-sysext.socket (GetInfo's vendor)" "Vendor: extmerge" \
    "$(varlinkctl info /run/systemd/io.systemd.sysext 2>&1 | grep -o 'Vendor: .*')"
conf=$(varlinkctl call --more exec:/usr/bin/extmerge io.systemd.sysext.List '{"class":"confext"}' 2>&1)
if grep -q '"Name":"user-conf"' <<<"$conf"; then ok "Varlink List over exec:/usr/bin/extmerge names user-conf"; else
    not_ok "Varlink List over exec:/usr/bin/extmerge names user-conf: $(tr '\n' ' ' <<<"$conf" | cut -c1-300)"
fi
mids=$(mount_ids /usr /opt /etc)
r=$(varlinkctl call /run/systemd/io.systemd.sysext io.systemd.sysext.Refresh '{}' 2>&1)
check_eq "Varlink Refresh over the socket replies {}" "{}" "$r"
check_eq "Varlink Refresh with nothing changed remounted nothing" "$mids" "$(mount_ids /usr /opt /etc)"
finish
