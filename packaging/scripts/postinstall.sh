#!/bin/sh
# relaymesh postinstall (deb: configure; rpm: $1 = install count).
# Honours DPKG_ROOT, so `dpkg --root DIR --force-script-chrootless` installs
# into DIR without touching the host.
set -e
root=${DPKG_ROOT:-}

# The coordinator's system user; the node runs as root.
if ! grep -q '^relaymesh:' "$root/etc/passwd" 2>/dev/null; then
	if command -v useradd >/dev/null 2>&1; then
		if [ -n "$root" ]; then prefix="--prefix $root"; else prefix=""; fi
		# shellcheck disable=SC2086
		useradd $prefix --system --user-group --no-create-home \
			--home-dir /var/lib/relaymesh/coordinator --shell /usr/sbin/nologin \
			--comment "relaymesh coordinator" relaymesh
	else
		echo "relaymesh: useradd not found; create the system user relaymesh before starting relaymesh-coordinator" >&2
	fi
fi

install -d -m 0755 "$root/var/lib/relaymesh"
install -d -m 0700 "$root/var/lib/relaymesh/node"
install -d -m 0700 "$root/var/lib/relaymesh/coordinator"
if grep -q '^relaymesh:' "$root/etc/passwd" 2>/dev/null; then
	if [ -n "$root" ]; then
		uid=$(awk -F: '$1 == "relaymesh" {print $3}' "$root/etc/passwd")
		gid=$(awk -F: '$1 == "relaymesh" {print $4}' "$root/etc/passwd")
		chown "$uid:$gid" "$root/var/lib/relaymesh/coordinator"
	else
		chown relaymesh:relaymesh /var/lib/relaymesh/coordinator
	fi
fi

# Reload units on a running systemd; never start anything: a coordinator
# needs `coordinator init` and a node `node enroll` first.
if [ -z "$root" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	for u in relaymesh-coordinator relaymesh-node; do
		if systemctl is-active --quiet "$u.service"; then
			systemctl try-restart "$u.service" || true
		fi
	done
fi
exit 0
