#!/usr/bin/env bash
# make e2e-netns: relaymesh processes in Linux network namespaces, each
# site behind a tbf-shaped WAN link; see netns_test.go.
#
# When this machine cannot run it (not Linux, not root, no ip/tc, `ip netns`
# not working) it says exactly why and exits 0. Otherwise it exits with the
# test's status. Whatever happens (failure, timeout, Ctrl-C), the trap kills
# the processes left in this run's namespaces and deletes the namespaces
# (which removes their bridges and veths); every name starts with this
# run's own prefix rm-<random>, so parallel runs do not clash.
#
# Environment: GO (go), E2E_NETNS_TIMEOUT (6m), and the RELAYMESH_NETNS_*
# knobs of netns_test.go (SITES, NODES, MIB, RATE, MAX_RATIO).
set -uo pipefail

cd "$(dirname "$0")/../.."
GO=${GO:-go}

skip() {
	echo "e2e-netns: SKIPPED: $*"
	exit 0
}

[ "$(uname -s)" = Linux ] || skip "needs Linux network namespaces (this is $(uname -s))"
[ "$(id -u)" = 0 ] || skip "needs root (id -u is $(id -u)) to create network namespaces, veths and tc qdiscs"
command -v ip >/dev/null 2>&1 || skip "ip not found (apt-get install -y iproute2)"
command -v tc >/dev/null 2>&1 || skip "tc not found (apt-get install -y iproute2)"
if ! out=$(ip netns list 2>&1); then
	skip "\`ip netns list\` fails: $out"
fi

prefix="rm-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
probe="$prefix-probe"
if ! out=$(ip netns add "$probe" 2>&1); then
	skip "cannot create a network namespace (ip netns add: $out)"
fi
ip netns del "$probe" 2>/dev/null

# The tests raise the kernel's neighbour table limits (one table for all
# namespaces) for big fleets and restore them; if a test binary dies, the
# trap puts back the values seen here.
neigh_saved=""
for k in gc_thresh1 gc_thresh2 gc_thresh3; do
	neigh_saved="$neigh_saved $k=$(cat /proc/sys/net/ipv4/neigh/default/$k 2>/dev/null)"
done
restore_neigh() {
	local kv
	for kv in $neigh_saved; do
		[ -n "${kv#*=}" ] && echo "${kv#*=}" >"/proc/sys/net/ipv4/neigh/default/${kv%%=*}" 2>/dev/null
	done
	return 0
}

cleanup() {
	restore_neigh
	local ns pid n=0
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-" || true); do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
		n=$((n + 1))
	done
	if [ "$n" -gt 0 ]; then
		echo "e2e-netns: trap removed $n leftover namespaces ${prefix}-*"
	fi
	rm -rf "$rundir"
}
# The binary and the test's temp dirs (TMPDIR) live in one directory per
# run, so the trap also removes them when go test dies without cleaning.
rundir=$(mktemp -d /tmp/relaymesh-netns.XXXXXX)
mkdir -p "$rundir/tmp"
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "e2e-netns: building relaymesh"
"$GO" build -o "$rundir/relaymesh" . || exit 1

echo "e2e-netns: namespaces $prefix-*"
TMPDIR=$rundir/tmp RELAYMESH_NETNS_PREFIX=$prefix RELAYMESH_BIN=$rundir/relaymesh \
	"$GO" test -tags netns -count=1 -timeout "${E2E_NETNS_TIMEOUT:-6m}" -v -run 'TestWANBytesPerSite|TestFleetOf80|TestSiteBehindNAT' ./e2e/netns/
