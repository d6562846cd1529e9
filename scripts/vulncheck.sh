#!/usr/bin/env bash
# make vulncheck: govulncheck over ./... against an OFFLINE copy of the Go
# vulnerability database, failing on reachable findings that have a fix.
#
# The database is the golang.org/x/vulndb module at a pinned version, fetched
# through the Go module proxy like any module and converted once into the
# layout `govulncheck -db file:///DIR` reads (internal/vulndb). govulncheck
# itself is built once from golang.org/x/vuln at a pinned version. Both are
# cached under $VULNCHECK_CACHE (default ~/.cache/relaymesh/vulncheck), so a
# warm run costs the scan alone (about 15 s on 2 cores).
#
# Bump VULNDB_VERSION to scan against newer reports:
#   go list -m -versions golang.org/x/vulndb   (or a pseudo-version from the proxy)
set -euo pipefail
cd "$(dirname "$0")/.."

GOVULNCHECK_VERSION=${GOVULNCHECK_VERSION:-v1.9.0}
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}
# The scan reports the standard library of the toolchain the go command
# picks, so it uses the caller's GOTOOLCHAIN as it is: the one the build
# uses (the Makefile and .ci/run set go1.27.3, whose standard library has the
# fixes go1.26.8 lacks). Run it through `make vulncheck`.
GO=${GO:-go}
CACHE=${VULNCHECK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relaymesh/vulncheck}
mkdir -p "$CACHE"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# govulncheck, built with the toolchain the scan uses (a govulncheck built by
# an older Go cannot type-check a newer standard library).
tc=$(cd "$work" && "$GO" env GOVERSION)
bindir="$CACHE/govulncheck-$GOVULNCHECK_VERSION-$tc"
if [ ! -x "$bindir/govulncheck" ]; then
	echo "vulncheck: building govulncheck $GOVULNCHECK_VERSION with $tc"
	(cd "$work" && GOBIN="$work/bin" "$GO" install "golang.org/x/vuln/cmd/govulncheck@$GOVULNCHECK_VERSION")
	mkdir -p "$bindir" && mv "$work/bin/govulncheck" "$bindir/govulncheck"
fi

# The converter and gate (our code).
"$GO" build -o "$work/vulndb" ./internal/tools/vulndb

db="$CACHE/vulndb-$VULNDB_VERSION"
if [ ! -f "$db/index/modules.json" ]; then
	echo "vulncheck: fetching golang.org/x/vulndb@$VULNDB_VERSION through the module proxy"
	# Outside our module, so go.mod and go.sum stay as they are.
	meta=$(cd "$work" && "$GO" mod download -json "golang.org/x/vulndb@$VULNDB_VERSION") || {
		echo "vulncheck: cannot download golang.org/x/vulndb@$VULNDB_VERSION: $meta" >&2
		exit 2
	}
	field() { printf '%s\n' "$meta" | sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p"; }
	dir=$(field Dir)
	info=$(field Info)
	if [ -z "$dir" ] || [ -z "$info" ]; then
		echo "vulncheck: go mod download printed no Dir/Info for golang.org/x/vulndb@$VULNDB_VERSION:" >&2
		echo "$meta" >&2
		exit 2
	fi
	rm -rf "$db"
	"$work/vulndb" convert -src "$dir/data/osv" -info "$info" -out "$db"
fi

echo "vulncheck: govulncheck $GOVULNCHECK_VERSION, $tc, golang.org/x/vulndb@$VULNDB_VERSION (offline)"
if ! "$bindir/govulncheck" -format json -db "file://$db" ./... >"$work/scan.json" 2>"$work/scan.err"; then
	echo "vulncheck: govulncheck failed:" >&2
	cat "$work/scan.err" >&2
	exit 2
fi
"$work/vulndb" gate <"$work/scan.json"
