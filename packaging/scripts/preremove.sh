#!/bin/sh
# relaymesh preremove (deb: remove|upgrade|...; rpm: $1 = count left).
set -e
root=${DPKG_ROOT:-}
case "$1" in
remove | 0)
	if [ -z "$root" ] && [ -d /run/systemd/system ]; then
		systemctl stop relaymesh-node.service relaymesh-coordinator.service >/dev/null 2>&1 || true
		systemctl disable relaymesh-node.service relaymesh-coordinator.service >/dev/null 2>&1 || true
	fi
	;;
esac
exit 0
