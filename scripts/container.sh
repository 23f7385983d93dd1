#!/usr/bin/env bash
# Build the Bastion container image from ./Containerfile with no image registry: the Debian bookworm base comes
# from Debian's packages (debootstrap --variant=minbase, with python3), imported once as $BASE; the image installs
# the wheel built from this checkout. Needs root, `apt-get install -y debootstrap buildah`, and the Debian mirror
# and the Python package index (for the wheel's dependencies) reachable.
#   sudo bash scripts/container.sh                 # -> localhost/bastion:<version>
#   IMAGE=registry.example.com/bastion:1.0 sudo -E bash scripts/container.sh && buildah push registry.example.com/bastion:1.0
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
BASE=${BASE:-localhost/debian-bookworm-python:latest}
IMAGE=${IMAGE:-localhost/bastion:$VERSION}
ROOTFS=${ROOTFS:-/var/tmp/bastion-rootfs}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  if [ ! -x "$ROOTFS/usr/bin/python3" ]; then
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR"
  fi
  ctr=$(buildah from scratch)
  tar -C "$ROOTFS" -cf /var/tmp/bastion-rootfs.tar .
  buildah add "$ctr" /var/tmp/bastion-rootfs.tar /
  buildah config --cmd /bin/bash "$ctr"
  buildah commit --rm "$ctr" "$BASE"
  rm -f /var/tmp/bastion-rootfs.tar
fi
rm -rf dist
"$PY" -m pip wheel --wheel-dir dist .   # the wheel and its dependencies: the build itself needs no index
buildah bud --network host --isolation chroot --build-arg BASE="$BASE" -f Containerfile -t "$IMAGE" .
buildah run --isolation chroot "$(buildah from "$IMAGE")" -- bastion --help >/dev/null
echo "built $IMAGE"
