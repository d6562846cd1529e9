#!/usr/bin/env bash
# Package build throughput and memory, compared in the same run with
# sha256sum of the same file (the baseline the foundation issue names).
# Usage: scripts/bench-build.sh [SIZE_MiB] [RUNS]   (default 1024 MiB, 3 runs)
set -euo pipefail
cd "$(dirname "$0")/.."
size_mib=${1:-1024}
runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/relaymesh" .
# gzip's magic first: package build refuses what is not tar.gz, zip or .deb.
{ printf '\037\213'; head -c $(((size_mib << 20) - 2)) /dev/urandom; } > "$work/archive.bin"
sha256sum "$work/archive.bin" > /dev/null # warm the page cache
echo "file: ${size_mib} MiB, ${runs} runs each, interleaved; $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %8s %8s %8s %10s\n' tool real_s user_s sys_s maxrss_MiB
for i in $(seq "$runs"); do
	/usr/bin/time -f "sha256sum %e %U %S %M" -o "$work/t" sha256sum "$work/archive.bin" > /dev/null
	read -r name real user sys rss < "$work/t"
	printf '%-28s %8s %8s %8s %10d\n' "$name" "$real" "$user" "$sys" $((rss / 1024))
	rm -rf "$work/store"
	/usr/bin/time -f "relaymesh-package-build %e %U %S %M" -o "$work/t" "$work/relaymesh" package build --quiet \
		--store "$work/store" --out "$work/m.json" --name bench --version 1 --action launch --command 'sh x' "$work/archive.bin" > /dev/null
	read -r name real user sys rss < "$work/t"
	printf '%-28s %8s %8s %8s %10d\n' "$name" "$real" "$user" "$sys" $((rss / 1024))
done
