#!/usr/bin/env bash
# Builds the Dockerfile's image as localhost/foreman:dev with podman (no Docker engine, no registry here), for the
# image tests (tests/integration/test_image.py) and for running it by hand. Everything lives under CACHE (default
# ~/.cache/foreman) in image/:
#   base-KEY.tar  the base root filesystem: Debian bookworm's python3, venv, bubblewrap and CA certificates, made by
#                 mmdebstrap from the machine's own Debian sources (a minute), imported as localhost/foreman-base:KEY;
#                 KEY hashes what goes into it, so a new package list or CA certificate makes a new base
#   podman        podman with this folder's containers.conf and storage (runc: crun refuses hybrid cgroups; no default
#                 ulimits, which this machine refuses) and layer cache, so a second build takes seconds
# The machine's CA certificates and /etc/pip.conf, where it has them, are copied into the base: pip reaches PyPI
# through them during the build.
set -euo pipefail
CACHE=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/foreman}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR="$CACHE/image"
IMAGE=localhost/foreman:dev
SUITE=bookworm
PACKAGES=python3,python3-venv,ca-certificates,bubblewrap,passwd
fail() { echo "error: $*" >&2; exit 2; }
for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || fail "\`$tool\` not found: run \`make image-tools\` (apt-get install podman runc mmdebstrap)"
done
mkdir -p "$DIR/storage"
cat >"$DIR/containers.conf" <<EOF
[containers]
default_ulimits = []
[engine]
runtime = "$(command -v runc)"
EOF
cat >"$DIR/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$DIR/storage"
runroot = "${XDG_RUNTIME_DIR:-/run}/foreman-podman"
EOF
cat >"$DIR/podman.partial" <<EOF
#!/bin/sh
# podman with the image cache of tests/servers/build-image.sh (written by it)
CONTAINERS_CONF="$DIR/containers.conf" CONTAINERS_STORAGE_CONF="$DIR/storage.conf" exec podman "\$@"
EOF
chmod +x "$DIR/podman.partial"
mv "$DIR/podman.partial" "$DIR/podman"
PODMAN="$DIR/podman"

# What the base is made of: Debian's sources where the machine runs this suite (its mirror or proxy), else
# mmdebstrap's default mirror; the certificates and pip's settings where the machine has them
sources=()
if grep -qs "^VERSION_CODENAME=$SUITE$" /etc/os-release; then
  # NB: binary packages' sources only (the floor apiserver's build adds a deb-src one)
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    grep -Eqs '^(deb |Types:(.* )?deb( |$))' "$file" && sources+=("$file")
  done
fi
certificates=(/usr/local/share/ca-certificates/*.crt)
[ -e "${certificates[0]}" ] || certificates=()
pip_conf=()
[ -f /etc/pip.conf ] && pip_conf=(/etc/pip.conf)
KEY=$( { echo "$SUITE $PACKAGES"; cat ${sources[@]+"${sources[@]}"} ${certificates[@]+"${certificates[@]}"} \
  ${pip_conf[@]+"${pip_conf[@]}"}; } | sha256sum | cut -c1-12)
BASE=localhost/foreman-base:$KEY
if [ ! -f "$DIR/base-$KEY.tar" ]; then
  echo "==> making the base root filesystem (Debian $SUITE: ${PACKAGES//,/ }) with mmdebstrap (a minute)"
  hook=':'
  [ ${#certificates[@]} -gt 0 ] && hook+='; cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/"'
  hook+='; chroot "$1" update-ca-certificates >/dev/null 2>&1'
  [ ${#pip_conf[@]} -gt 0 ] && hook+='; cp /etc/pip.conf "$1/etc/pip.conf"'
  # NB: no documentation, manual pages or translations in an image nobody logs into
  mmdebstrap --quiet --variant=minbase --format=tar --include="$PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --customize-hook="$hook" \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$SUITE" "$DIR/base-$KEY.tar.partial" ${sources[@]+"${sources[@]}"} >"$DIR/base.log" 2>&1 \
    || { tail -30 "$DIR/base.log"; fail "mmdebstrap failed (the whole log: $DIR/base.log)"; }
  # NB: the tar arrives whole or not at all: its presence says the cache entry is complete
  mv "$DIR/base-$KEY.tar.partial" "$DIR/base-$KEY.tar"
  find "$DIR" -maxdepth 1 -name 'base-*.tar' ! -name "base-$KEY.tar" -delete  # an older base, of other inputs
fi
if ! "$PODMAN" image exists "$BASE"; then
  echo "==> importing the base as $BASE"
  "$PODMAN" import --quiet "$DIR/base-$KEY.tar" "$BASE" >/dev/null
fi
echo "==> building $IMAGE from the Dockerfile on $BASE"
# NB: host network: the build's pip reaches PyPI as the machine does (this podman has no container networks)
"$PODMAN" build --quiet --network=host --build-arg "BASE=$BASE" --tag "$IMAGE" "$ROOT" >"$DIR/build.log" 2>&1 \
  || { tail -30 "$DIR/build.log"; fail "podman build failed (the whole log: $DIR/build.log)"; }
# NB: a build leaves the image it replaced untagged, with the layers only that one was made of: without a prune the
# cache grows by an image (~350 MB) per code change. What the new image is made of (its dependency layer) stays.
"$PODMAN" image prune --force >/dev/null
for stale in $("$PODMAN" images --format '{{.Repository}}:{{.Tag}}' localhost/foreman-base); do
  [ "$stale" = "$BASE" ] || "$PODMAN" rmi --force "$stale" >/dev/null  # a base of other inputs (sources, certificates)
done
echo "==> built $IMAGE ($("$PODMAN" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%d MB", $1 / 1e6}')): run it with $PODMAN"
