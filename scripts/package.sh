#!/usr/bin/env bash
# make package: the relaymesh .deb and .rpm (nfpm), with the version stamped
# into the binary. Output in $PKG_OUT (default out/package).
#
#   VERSION   package and binary version (default 0.0.0+git.<short commit>)
#   PKG_ARCH  amd64 or arm64 (default: this machine's GOARCH)
#
# nfpm is built once from github.com/goreleaser/nfpm at a pinned version and
# cached under $NFPM_CACHE (default ~/.cache/relaymesh/nfpm), so it stays
# out of go.mod.
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
NFPM_VERSION=${NFPM_VERSION:-v2.48.0}
OUT=${PKG_OUT:-out/package}
CACHE=${NFPM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/relaymesh/nfpm}

if [ -z "${VERSION:-}" ]; then
	sha=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
	VERSION="0.0.0+git.$sha"
fi
case "$VERSION" in
[0-9]*) ;;
*)
	echo "package: VERSION $VERSION: must start with a digit (dpkg and rpm order versions that way), e.g. 1.2.3" >&2
	exit 1
	;;
esac
arch=${PKG_ARCH:-$("$GO" env GOARCH)}

nfpm="$CACHE/nfpm-$NFPM_VERSION"
if [ ! -x "$nfpm" ]; then
	echo "package: building nfpm $NFPM_VERSION (once)"
	mkdir -p "$CACHE"
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	(cd "$tmp" && GOBIN="$tmp/bin" GOFLAGS=-buildvcs=false "$GO" install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION")
	mv "$tmp/bin/nfpm" "$nfpm"
fi

stage="$OUT/stage-$arch"
rm -rf "$stage"
mkdir -p "$stage"
echo "package: relaymesh $VERSION for linux/$arch"
CGO_ENABLED=0 GOOS=linux GOARCH="$arch" "$GO" build -trimpath \
	-ldflags "-s -w -X github.com/relaymesh/relaymesh/internal/version.stamp=$VERSION" \
	-o "$stage/relaymesh" .
"$GO" run ./internal/tools/genman "$stage/relaymesh.1.gz"

# nfpm expands the environment in some fields only; fill in all of ours.
sed -e "s|\${PKG_VERSION}|$VERSION|g" -e "s|\${PKG_ARCH}|$arch|g" \
	-e "s|\${PKG_BIN}|$stage/relaymesh|g" -e "s|\${PKG_MAN}|$stage/relaymesh.1.gz|g" \
	packaging/nfpm.yaml >"$stage/nfpm.yaml"
for fmt in deb rpm; do
	"$nfpm" package --config "$stage/nfpm.yaml" --packager "$fmt" --target "$OUT/" >/dev/null
done
ls -1 "$OUT"/relaymesh*"$VERSION"* 2>/dev/null || ls -1 "$OUT"
