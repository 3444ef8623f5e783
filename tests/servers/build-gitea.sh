#!/usr/bin/env bash
# Builds Gitea from the Go module code.gitea.io/gitea (pinned version and go.sum hash) and caches it under CACHE
# (default ~/.cache/foreman) as gitea-vVERSION/: the binary plus the source tree's options/, templates/ and public/,
# which a build without the bindata tag reads at run time (the fixture points [server] STATIC_ROOT_PATH there).
# The real forge of the pull-request tests (tests/servers/gitea.py); the module comes through go-module.sh.
# ~4 minutes on 2 quiet cores.
set -euo pipefail
CACHE=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/foreman}
VERSION=1.27.3
MODULE_SUM=h1:SRnjvw24ASELKCqyYvAWIlzwOqyFMgfD+UkqQ9SE5eU=
TARGET="$CACHE/gitea-v$VERSION"
fail() { echo "error: $*" >&2; exit 2; }
if [ -x "$TARGET/gitea" ] && [ -d "$TARGET/options/locale" ]; then
  echo "gitea $VERSION already built: $TARGET"
  exit 0
fi
command -v gcc >/dev/null || fail "gcc not found: gitea's sqlite driver needs cgo"
. "$(dirname "$0")/go-module.sh"
go_module_source code.gitea.io/gitea "$VERSION" "$MODULE_SUM" gitea
echo "==> compiling gitea v$VERSION with $("$GO" env GOVERSION) (sqlite; minutes)"
(cd "$WORK/src" && CGO_ENABLED=1 "$GO" build -trimpath -tags "sqlite sqlite_unlock_notify" \
  -ldflags "-s -w -X main.Version=$VERSION -X 'main.Tags=sqlite sqlite_unlock_notify'" -o "$WORK/gitea" .) \
  >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "go build of gitea v$VERSION failed"; }
mkdir -p "$TARGET"
for dir in options templates public; do
  rm -rf "$TARGET/$dir"
  cp -r "$WORK/src/$dir" "$TARGET/$dir"
done
# NB: the binary last: its presence says the cache entry is whole
mv "$WORK/gitea" "$TARGET/gitea.partial"
mv "$TARGET/gitea.partial" "$TARGET/gitea"
echo "==> built $TARGET/gitea ($(du -m "$TARGET/gitea" | cut -f1) MB)"
