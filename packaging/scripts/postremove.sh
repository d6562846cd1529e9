#!/bin/sh
# relaymesh postremove (deb: remove|purge|upgrade|...; rpm: $1 = count left).
# Purge removes what the package made; a node's or coordinator's state
# (keys, enrollment, cache) is kept when present, and said so: losing a
# coordinator's order key means re-enrolling the fleet.
set -e
root=${DPKG_ROOT:-}
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
fi
case "$1" in
purge)
	rmdir "$root/etc/relaymesh" 2>/dev/null || true
	for d in node coordinator; do
		rmdir "$root/var/lib/relaymesh/$d" 2>/dev/null || true
	done
	rmdir "$root/var/lib/relaymesh" 2>/dev/null ||
		echo "relaymesh: kept $root/var/lib/relaymesh (state: keys, enrollment, cache); remove it by hand if it is no longer needed" >&2
	;;
esac
exit 0
