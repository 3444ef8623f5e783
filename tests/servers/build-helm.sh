#!/usr/bin/env bash
# Builds helm from the Go module helm.sh/helm/v4 (pinned version and go.sum hash) and caches the binary under CACHE
# (default ~/.cache/foreman) as helm-vVERSION/helm: the real helm of the chart tests (tests/integration/test_chart.py).
# The module comes through go-module.sh and cmd/helm is built in its folder: CGO_ENABLED=0 as helm's own Makefile
# builds it, the version stamped with the same -X flag. A few minutes on 2 quiet cores.
set -euo pipefail
CACHE=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/foreman}
VERSION=4.3.2
MODULE_SUM=h1:zdd8DgKTlLrlYIzdoAntDHLH0V3RkgNIpQ3yjzuD84M=
TARGET="$CACHE/helm-v$VERSION"
fail() { echo "error: $*" >&2; exit 2; }
if [ -x "$TARGET/helm" ]; then
  echo "helm $VERSION already built: $TARGET"
  exit 0
fi
. "$(dirname "$0")/go-module.sh"
go_module_source helm.sh/helm/v4 "$VERSION" "$MODULE_SUM" helm
echo "==> compiling helm v$VERSION with $("$GO" env GOVERSION) (minutes)"
(cd "$WORK/src" && CGO_ENABLED=0 "$GO" build -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=v$VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean" \
  -o "$WORK/helm" ./cmd/helm) >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "go build of helm v$VERSION failed"; }
mkdir -p "$TARGET"
# NB: the binary arrives whole or not at all: its presence says the cache entry is complete
mv "$WORK/helm" "$TARGET/helm.partial"
mv "$TARGET/helm.partial" "$TARGET/helm"
echo "==> built $TARGET/helm ($(du -m "$TARGET/helm" | cut -f1) MB)"
