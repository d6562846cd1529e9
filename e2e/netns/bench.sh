#!/usr/bin/env bash
# make bench-netns: relaymesh distribution measured as an admin gets it,
# real processes in Linux network namespaces with tbf-shaped links; see
# TestBenchNetns in bench_test.go. Not part of make test.
#
# BENCH_NETNS_SET lists runs as SITESxNODESxMIB (default
# "4x8x32 4x16x32 4x8x1"), BENCH_NETNS_RUNS how often each (3). Rates:
# RELAYMESH_BENCH_WAN (20mbit), _PORT (200mbit), _COORD (100mbit).
# Results: a table per run, every run's table at the end, and
# BENCH_NETNS_OUT (out/bench-netns/results.jsonl), one JSON object a run.
#
# Without root, ip/tc or working namespaces it says why and exits 0. The
# trap removes this run's namespaces whatever happens.
set -uo pipefail

cd "$(dirname "$0")/../.."
GO=${GO:-go}

skip() {
	echo "bench-netns: SKIPPED: $*"
	exit 0
}

[ "$(uname -s)" = Linux ] || skip "needs Linux network namespaces (this is $(uname -s))"
[ "$(id -u)" = 0 ] || skip "needs root (id -u is $(id -u)) to create network namespaces, veths and tc qdiscs"
command -v ip >/dev/null 2>&1 || skip "ip not found (apt-get install -y iproute2)"
command -v tc >/dev/null 2>&1 || skip "tc not found (apt-get install -y iproute2)"
if ! out=$(ip netns list 2>&1); then
	skip "\`ip netns list\` fails: $out"
fi

set_list=${BENCH_NETNS_SET:-4x8x32 4x16x32 4x8x1}
runs=${BENCH_NETNS_RUNS:-3}
out=${BENCH_NETNS_OUT:-out/bench-netns/results.jsonl}
mkdir -p "$(dirname "$out")"
: >"$out"

rundir=$(mktemp -d /tmp/relaymesh-bench.XXXXXX)
prefix=""
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
	local ns pid
	if [ -n "$prefix" ]; then
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${prefix}-" || true); do
			for pid in $(ip netns pids "$ns" 2>/dev/null); do
				kill -KILL "$pid" 2>/dev/null || true
			done
			ip netns del "$ns" 2>/dev/null || true
		done
	fi
	rm -rf "$rundir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench-netns: building relaymesh"
"$GO" build -o "$rundir/relaymesh" . || exit 1
"$GO" test -tags netns -c -o "$rundir/netns.test" ./e2e/netns/ || exit 1

status=0
for spec in $set_list; do
	IFS=x read -r sites nodes mib <<<"$spec"
	for run in $(seq 1 "$runs"); do
		prefix="rb-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
		label="${spec}#${run}"
		echo "== bench-netns $label: $sites sites x $nodes nodes, $mib MiB"
		mkdir -p "$rundir/tmp"
		(cd e2e/netns && TMPDIR=$rundir/tmp RELAYMESH_NETNS_PREFIX=$prefix RELAYMESH_BIN=$rundir/relaymesh \
			RELAYMESH_BENCH_SITES=$sites RELAYMESH_BENCH_NODES=$nodes RELAYMESH_BENCH_MIB=$mib \
			RELAYMESH_BENCH_LABEL=$label RELAYMESH_BENCH_JSON=$(cd ../.. && realpath "$out") \
			"$rundir/netns.test" -test.run '^TestBenchNetns$' -test.v -test.count=1 -test.timeout 20m) || status=1
		cleanup_ns=$prefix
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${cleanup_ns}-" || true); do
			ip netns del "$ns" 2>/dev/null || true
		done
		rm -rf "$rundir/tmp"
	done
done
echo "bench-netns: results in $out"
exit $status
