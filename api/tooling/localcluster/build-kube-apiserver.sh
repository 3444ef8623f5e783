#!/usr/bin/env bash
# Builds a real kube-apiserver of one Kubernetes release and caches it as CACHE_DIR/kube-apiserver-vX.Y.Z.
#
# Two routes, no Docker, no fetching of anyone's repository:
# - a current release (default: the one pinned in kube-apiserver/go.mod, go.sum committed) from the k8s.io/kubernetes
#   Go module: `go build` in our tiny module, offline after the first download; any other v1.2x+ module release is
#   built from a copy of that module re-pinned to it (its go.sum is then made on the spot);
# - v1.20.2, the oldest release we support, from Debian bookworm's Kubernetes source package (vendored tree).
# Both need etcd (Debian's etcd-server 3.4) and openssl at run time; they are installed here too.
# Usage: build-kube-apiserver.sh CACHE_DIR [VERSION]   (VERSION: 1.37.2, v1.34.4, 1.20.2, ...; default: go.mod's)
# Prints `==> ` lines as it goes; the last line names the binary. Exit 2 with one line when a prerequisite is missing.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
module="$here/kube-apiserver"
cache=${1:?usage: build-kube-apiserver.sh CACHE_DIR [VERSION]}
pinned=$(sed -n 's/^[[:space:]]*\(require \)\{0,1\}k8s\.io\/kubernetes v\([^ ]*\).*/\2/p' "$module/go.mod")
version=${2:-$pinned}
version=${version#v}
debian_version="1.20.5+really1.20.2-1.1+deb12u1"
binary="$cache/kube-apiserver-v$version"

step() { echo "==> $*"; }
fail() { echo "error: $*" >&2; exit 2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  command -v apt-get >/dev/null || fail "$* not installed and no apt-get here to install it; install it by hand"
  step "installing $* with apt"
  sudo_if_needed apt-get update -qq || fail "apt-get update failed (root or sudo needed to install $*)"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
    || fail "apt-get install $* failed"
}

[[ $version =~ ^1\.[0-9]+\.[0-9]+$ ]] || fail "not a Kubernetes release: '$version' (want e.g. $pinned or 1.20.2)"
# NB: the v1.20 binary was cached as plain `kube-apiserver` before releases were told apart
if [ "$version" = 1.20.2 ] && [ ! -x "$binary" ] && [ -x "$cache/kube-apiserver" ]; then
  ln "$cache/kube-apiserver" "$binary" 2>/dev/null || cp "$cache/kube-apiserver" "$binary"
fi

# What *running* the control plane needs, whichever route built the binary.
run_needs=()
command -v etcd >/dev/null || run_needs+=(etcd-server)
command -v openssl >/dev/null || run_needs+=(openssl)
[ ${#run_needs[@]} -eq 0 ] || apt_install "${run_needs[@]}"

if [ -x "$binary" ]; then
  echo "kube-apiserver v$version already built: $binary"
  exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "${TMPDIR:-/tmp}/foreman-apiserver-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

build_from_debian() {
  local need=0 tool
  for tool in rsync make; do command -v "$tool" >/dev/null || need=1; done
  # NB: the v1.20 tree predates Go modules as the build knows them today; Debian's own Go 1.19 is the one it was
  # packaged with, so pin it rather than whatever `go` the machine has.
  [ -x /usr/lib/go-1.19/bin/go ] || need=1
  [ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need=1
  if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: $debian_version"; then
    command -v apt-get >/dev/null || fail "v1.20.2 is built from Debian's source package: needs apt-get"
    step "enabling Debian bookworm source packages"
    sudo_if_needed tee /etc/apt/sources.list.d/foreman-deb-src.sources >/dev/null <<SRC || fail "cannot write apt sources"
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    need=1
  fi
  [ "$need" -eq 0 ] || apt_install golang-1.19-go rsync make dpkg-dev \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev

  cd "$work"
  step "downloading the kubernetes $debian_version source package"
  apt-get source --download-only -qq "kubernetes=$debian_version" >/dev/null
  mkdir src
  tar -xzf kubernetes_1.20.5+really1.20.2.orig.tar.gz -C src --strip-components=1
  cd src
  # NB: the vendored reflect2 v1.0.1 crashes under Go >= 1.18 ("fatal error: fault" on the first custom-object
  # create); Debian's packaged copies of reflect2 and json-iterator are fixed.
  step "replacing vendored reflect2 and json-iterator with Debian's fixed copies"
  local pkg
  for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
    rm -rf "vendor/$pkg"
    cp -r "/usr/share/gocode/src/$pkg" "vendor/$pkg"
    find "vendor/$pkg" -name '*_test.go' -delete
  done
  step "compiling kube-apiserver v1.20.2 with $(/usr/lib/go-1.19/bin/go version | cut -d' ' -f3) (a few minutes)"
  PATH="/usr/lib/go-1.19/bin:$PATH" GOTOOLCHAIN=local make WHAT=cmd/kube-apiserver GOLDFLAGS="-s -w" \
    | sed -u 's/^+++ /==> /'
  install -m 0755 _output/bin/kube-apiserver "$binary.tmp"
}

build_from_module() {
  local need have
  need=$(sed -n 's/^go //p' "$module/go.mod")
  command -v go >/dev/null || fail "\`go\` not found: kube-apiserver v$version is built with Go $need or newer"
  have=$(go env GOVERSION 2>/dev/null) || have=unknown
  have=${have#go}
  # NB: Debian's golang-go (1.19) may come first on PATH; it is too old for any current release
  printf '%s\n%s\n' "$need" "$have" | sort -V -C \
    || fail "kube-apiserver v$version is built with Go $need or newer; \`go\` on PATH ($(command -v go)) is $have"
  local dir=$module minor=${version#1.}
  minor=${minor%%.*}
  export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
  if [ "$version" != "$pinned" ]; then
    # Another release: a module like ours pinned to it, its replace lines read off that release's own go.mod (the
    # staging modules it names), its go.sum made now (downloads, then offline like the pinned one).
    dir="$work/module"
    mkdir "$dir"
    step "resolving k8s.io/kubernetes v$version and its modules"
    local upstream
    upstream=$(cd "$work" && GOFLAGS= go mod download -json "k8s.io/kubernetes@v$version" 2>"$work/tidy.log" \
      | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p') || true
    [ -n "$upstream" ] || fail "k8s.io/kubernetes v$version cannot be had here: $(tail -1 "$work/tidy.log")"
    {
      sed -n '1,/^require/{/^require/d;p}' "$module/go.mod"
      echo "require k8s.io/kubernetes v$version"
      echo
      echo "replace ("
      sed -n 's/^[[:space:]]*\(k8s\.io\/[^ ]*\) => \.\/staging\/.*/\t\1 => \1 v0.'"${version#1.}"'/p' "$upstream"
      echo ")"
    } >"$dir/go.mod"
    (cd "$dir" && GOFLAGS=-mod=mod go mod tidy 2>"$work/tidy.log") || fail "k8s.io/kubernetes v$version does not" \
      "build here: $(grep -m1 -E 'requires go|invalid version|unknown revision|not found' "$work/tidy.log" \
      || tail -1 "$work/tidy.log")"
  fi
  cd "$dir"
  step "downloading the Go modules of k8s.io/kubernetes v$version (once per machine, a few hundred MB)"
  go mod download 2>"$work/download.log" || fail "go mod download failed: $(tail -1 "$work/download.log")"
  local total
  total=$(go list -deps k8s.io/kubernetes/cmd/kube-apiserver 2>/dev/null | wc -l) || total=0
  step "compiling kube-apiserver v$version with $(go env GOVERSION) (~$total packages, ~10 min on 2 cores)"
  local flags="-s -w"
  local var
  for var in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $var.gitVersion=v$version -X $var.gitMajor=1 -X $var.gitMinor=$minor"
    flags+=" -X $var.gitTreeState=clean -X $var.buildDate=1970-01-01T00:00:00Z"
  done
  # NB: -v names each package as it is compiled: a line per 100 of them is the progress
  go build -v -trimpath -ldflags "$flags" -o "$binary.tmp" k8s.io/kubernetes/cmd/kube-apiserver 2>&1 \
    | awk -v total="$total" '
        /^(#|[^ ]+\.go:|go: |\t)/ || / error/ { print; fflush(); next }
        { n++; if (n % 100 == 0) { printf "==> compiled %d of ~%d packages\n", n, total; fflush() } }'
  [ "${PIPESTATUS[0]}" -eq 0 ] || fail "go build of kube-apiserver v$version failed (output above)"
}

if [ "$version" = 1.20.2 ]; then
  build_from_debian
else
  build_from_module
fi
mv "$binary.tmp" "$binary"
step "built $binary ($(du -m "$binary" | cut -f1) MB)"
