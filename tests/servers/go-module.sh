# Sourced by the build-*.sh scripts: `go_module_source MODULE VERSION SUM NAME` downloads a Go module from the module
# proxy, checks its go.sum hash and copies its folder to $WORK/src, writable (`go install` refuses a module with
# replace directives, so it is built in place). Sets GO and WORK (a temporary folder, removed on exit).
go_module_source() {
  local module=$1 version=$2 sum=$3 name=$4
  GO=$(command -v go || true)
  [ -n "$GO" ] || GO=/usr/local/go/bin/go
  [ -x "$GO" ] || fail "\`go\` not found: $name $version is built with Go 1.26 or newer"
  export GOTOOLCHAIN=local
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/foreman-$name-build.XXXXXX")
  trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
  echo "==> downloading the Go module $module v$version"
  (cd "$WORK" && "$GO" mod download -json "$module@v$version") >"$WORK/module.json" \
    || fail "go mod download failed: $(tail -1 "$WORK/module.json")"
  grep -q "\"Sum\": \"$sum\"" "$WORK/module.json" || fail "$module v$version: module hash mismatch"
  cp -r "$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$WORK/module.json")" "$WORK/src"
  chmod -R u+w "$WORK/src"
}
