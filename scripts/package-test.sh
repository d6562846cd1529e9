#!/usr/bin/env bash
# make package-test: builds the .deb and .rpm at two versions and checks
# them the way an admin meets them, in a scratch root (dpkg --root with
# chrootless maintainer scripts, so the host is never changed):
#   - the systemd units pass `systemd-analyze verify`;
#   - the .deb installs: binary (its --version is the package's), units,
#     man page, /etc/relaymesh conffiles, /var/lib/relaymesh, the system user;
#   - it upgrades to the next version keeping state and an edited conffile;
#   - it purges leaving no package file behind and dpkg's database clean
#     (state with content is kept, and said so);
#   - the .rpm carries the same files (rpm -qlp), when rpm is installed.
# Fails with the first check that does not hold.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
	echo "package-test: FAIL: $*" >&2
	exit 1
}
for c in dpkg dpkg-deb systemd-analyze useradd; do
	command -v "$c" >/dev/null 2>&1 || fail "$c not found (Debian packages dpkg, systemd, passwd)"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out="$work/out"
v1=1.0.0 v2=1.0.1
PKG_OUT="$out" VERSION=$v1 ./scripts/package.sh >/dev/null
PKG_OUT="$out" VERSION=$v2 ./scripts/package.sh >/dev/null
arch=$(${GO:-go} env GOARCH)
deb1="$out/relaymesh_${v1}_${arch}.deb"
deb2="$out/relaymesh_${v2}_${arch}.deb"
[ -f "$deb1" ] && [ -f "$deb2" ] || fail "packages not built: $(ls "$out")"

echo "== dpkg -c $(basename "$deb1")"
dpkg -c "$deb1"

# A scratch root with an empty dpkg database and the account files useradd
# edits.
R="$work/root"
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/etc" "$R/usr/sbin"
: >"$R/var/lib/dpkg/status"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf 'root:*:19000:0:99999:7:::\n' >"$R/etc/shadow"
printf 'root:*::\n' >"$R/etc/gshadow"
chmod 0640 "$R/etc/shadow" "$R/etc/gshadow"
mkdir -p "$R/usr/sbin" && ln -s /usr/sbin/nologin "$R/usr/sbin/nologin" 2>/dev/null || true
dpkgr() { dpkg --root="$R" --force-script-chrootless --force-unsafe-io --log=/dev/null "$@"; }

echo "== install $v1"
dpkgr -i "$deb1"
for f in usr/bin/relaymesh lib/systemd/system/relaymesh-coordinator.service lib/systemd/system/relaymesh-node.service \
	usr/share/man/man1/relaymesh.1.gz etc/relaymesh/coordinator.env etc/relaymesh/node.env; do
	[ -e "$R/$f" ] || fail "after install: /$f missing"
done
for d in var/lib/relaymesh/node var/lib/relaymesh/coordinator; do
	[ -d "$R/$d" ] || fail "after install: /$d missing"
done
[ "$(stat -c %a "$R/var/lib/relaymesh/node")" = 700 ] || fail "/var/lib/relaymesh/node is not 0700"
grep -q '^relaymesh:x:[0-9]*:[0-9]*:.*:/var/lib/relaymesh/coordinator:/usr/sbin/nologin$' "$R/etc/passwd" ||
	fail "no system user relaymesh: $(cat "$R/etc/passwd")"
uid=$(awk -F: '$1 == "relaymesh" {print $3}' "$R/etc/passwd")
[ "$uid" -lt 1000 ] || fail "relaymesh user has uid $uid, want a system uid below 1000"
[ "$(stat -c %u "$R/var/lib/relaymesh/coordinator")" = "$uid" ] || fail "/var/lib/relaymesh/coordinator is not owned by relaymesh"
got=$("$R/usr/bin/relaymesh" --version)
case "$got" in *"$v1"*) ;; *) fail "installed binary says \"$got\", want version $v1" ;; esac
echo "installed: $got"
zcat "$R/usr/share/man/man1/relaymesh.1.gz" | grep -q '^\.TH relaymesh 1' || fail "man page is not relaymesh(1)"
dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Status} ${Version}\n' relaymesh | grep -qx "install ok installed $v1" ||
	fail "dpkg status after install: $(dpkg-query --admindir="$R/var/lib/dpkg" -W relaymesh)"

echo "== systemd-analyze verify"
# verify resolves ExecStart= against the root, so it runs on the installed
# tree, with the host's own targets (sysinit.target, network-online.target …)
# copied in for the dependencies to load. The man page is checked above
# (verify would look it up in the host's man database).
for u in /lib/systemd/system/*.target /lib/systemd/system/*.slice; do
	[ -e "$R$u" ] || cp -a "$u" "$R/lib/systemd/system/"
done
if ! verify_out=$(systemd-analyze verify --man=no --root="$R" \
	/lib/systemd/system/relaymesh-coordinator.service /lib/systemd/system/relaymesh-node.service 2>&1); then
	echo "$verify_out" >&2
	fail "systemd-analyze verify"
fi
# Warnings about the scratch root itself (no /etc/machine-id, no systemd
# manager) are not about our units; anything naming them is.
if echo "$verify_out" | grep -E 'relaymesh-(coordinator|node)\.service' >&2; then
	fail "systemd-analyze verify has findings for the units"
fi
echo "units verified${verify_out:+ (other output: $(echo "$verify_out" | wc -l) lines about the scratch root)}"

echo "== upgrade $v1 -> $v2 keeps state and an edited conffile"
echo "state" >"$R/var/lib/relaymesh/node/keep-me"
echo "RELAYMESH_NODE_ARGS=--admin-edited" >>"$R/etc/relaymesh/node.env"
dpkgr -i "$deb2"
[ -f "$R/var/lib/relaymesh/node/keep-me" ] || fail "upgrade lost /var/lib/relaymesh/node state"
grep -q -- '--admin-edited' "$R/etc/relaymesh/node.env" || fail "upgrade replaced the edited /etc/relaymesh/node.env"
got=$("$R/usr/bin/relaymesh" --version)
case "$got" in *"$v2"*) ;; *) fail "upgraded binary says \"$got\", want $v2" ;; esac
[ "$(grep -c '^relaymesh:' "$R/etc/passwd")" = 1 ] || fail "upgrade added a second relaymesh user"
echo "upgraded: $got"

echo "== purge"
dpkgr --purge relaymesh 2>"$work/purge.err" || { cat "$work/purge.err" >&2; fail "dpkg --purge"; }
cat "$work/purge.err"
for f in usr/bin/relaymesh lib/systemd/system/relaymesh-coordinator.service lib/systemd/system/relaymesh-node.service \
	usr/share/man/man1/relaymesh.1.gz etc/relaymesh; do
	[ ! -e "$R/$f" ] || fail "after purge: /$f still there"
done
[ -f "$R/var/lib/relaymesh/node/keep-me" ] || fail "purge removed node state with content"
[ ! -e "$R/var/lib/relaymesh/coordinator" ] || fail "purge left the empty /var/lib/relaymesh/coordinator"
grep -q 'kept .*/var/lib/relaymesh' "$work/purge.err" || fail "purge kept state without saying so"
if dpkg-query --admindir="$R/var/lib/dpkg" -W relaymesh >/dev/null 2>&1; then
	fail "dpkg still knows relaymesh after purge: $(dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Status}' relaymesh)"
fi
if [ -n "$(ls "$R/var/lib/dpkg/info" | grep relaymesh || true)" ]; then
	fail "dpkg info files left: $(ls "$R/var/lib/dpkg/info")"
fi
echo "purged"

if command -v rpm >/dev/null 2>&1; then
	echo "== rpm -qlp"
	rpm1=$(ls "$out"/relaymesh-"$v1"-*.rpm)
	files=$(rpm -qlp "$rpm1" 2>/dev/null)
	echo "$files"
	for f in /usr/bin/relaymesh /lib/systemd/system/relaymesh-node.service /etc/relaymesh/node.env; do
		echo "$files" | grep -qx "$f" || fail "rpm lacks $f"
	done
	rpm -qp --qf '%{VERSION}\n' "$rpm1" 2>/dev/null | grep -qx "$v1" || fail "rpm version is not $v1"
else
	echo "== rpm not installed: the .rpm was built but not inspected"
fi
echo "package-test: ok"
