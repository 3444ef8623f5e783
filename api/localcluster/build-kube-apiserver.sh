#!/usr/bin/env bash
# Builds a real kube-apiserver from Debian bookworm's Kubernetes source package and caches it.
#
# Why from source: these machines have no Docker engine and no Go module proxy, but Debian ships the whole
# Kubernetes v1.20.2 tree with its Go dependencies vendored, and etcd 3.4 as a binary package.
# Usage: build-kube-apiserver.sh CACHE_DIR   (the binary lands in CACHE_DIR/kube-apiserver)
set -euo pipefail

cache=${1:?usage: build-kube-apiserver.sh CACHE_DIR}
version="1.20.5+really1.20.2-1.1+deb12u1"
binary="$cache/kube-apiserver"

step() { echo "==> $*"; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -x "$binary" ]; then
  # Already built: only make sure what *running* the control plane needs is here.
  if ! command -v etcd >/dev/null || ! command -v openssl >/dev/null; then
    step "installing etcd-server and openssl with apt"
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      etcd-server openssl >/dev/null
  fi
  echo "kube-apiserver already built: $binary"
  exit 0
fi

need_apt=0
for tool in go etcd rsync make openssl; do command -v "$tool" >/dev/null || need_apt=1; done
[ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need_apt=1
if ! apt-cache showsrc kubernetes 2>/dev/null | grep -q "^Version: $version"; then
  step "enabling Debian bookworm source packages"
  sudo_if_needed tee /etc/apt/sources.list.d/foreman-deb-src.sources >/dev/null <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_apt=1
fi
if [ "$need_apt" -eq 1 ]; then
  step "installing build prerequisites with apt (golang-go, etcd-server, ...)"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    golang-go etcd-server rsync make openssl curl dpkg-dev \
    golang-github-modern-go-reflect2-dev golang-github-json-iterator-go-dev >/dev/null
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/foreman-apiserver-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
step "downloading the kubernetes $version source package"
apt-get source --download-only -qq "kubernetes=$version" >/dev/null
mkdir src
tar -xzf kubernetes_1.20.5+really1.20.2.orig.tar.gz -C src --strip-components=1
cd src

# NB: the vendored reflect2 v1.0.1 crashes under Go >= 1.18 ("fatal error: fault" on the first custom-object
# create); Debian's packaged copies of reflect2 and json-iterator are fixed.
step "replacing vendored reflect2 and json-iterator with Debian's fixed copies"
for pkg in github.com/modern-go/reflect2 github.com/json-iterator/go; do
  rm -rf "vendor/$pkg"
  cp -r "/usr/share/gocode/src/$pkg" "vendor/$pkg"
  find "vendor/$pkg" -name '*_test.go' -delete
done

step "compiling kube-apiserver (a few minutes on 2 cores)"
make WHAT=cmd/kube-apiserver GOLDFLAGS="-s -w"
mkdir -p "$cache"
install -m 0755 _output/bin/kube-apiserver "$binary.tmp"
mv "$binary.tmp" "$binary"
step "built $binary"
