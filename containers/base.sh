#!/usr/bin/env bash
# Build the Python base image from Debian packages, for machines where python:3.11-slim cannot be pulled.
# mmdebstrap makes a minimal bookworm root filesystem (Debian's Python 3.11, venv, CA certificates) from
# this machine's apt sources; `podman import` turns it into an image. The tag carries a hash of the
# inputs (this script and the apt sources), so the base is rebuilt only when one of them changes.
# Prints the image reference on stdout (progress goes to stderr).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
PACKAGES=python3,python3-venv,python-is-python3,ca-certificates
NAME=localhost/fraud-python-base

sources=()
[ -f /etc/apt/sources.list ] && grep -qE '^\s*deb ' /etc/apt/sources.list && sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || { echo "base.sh: no apt sources found" >&2; exit 1; }

tag="$(cat containers/base.sh "${sources[@]}" | sha256sum | cut -c1-16)"
image="$NAME:$tag"
if podman image exists "$image"; then
  echo "base image $image is up to date" >&2
  echo "$image"
  exit 0
fi

echo "building base image $image with mmdebstrap" >&2
start=$SECONDS
# Docs, man pages and locales are never read in a container; dropping them keeps the base small.
mmdebstrap --variant=minbase --include="$PACKAGES" --quiet \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
  "$SUITE" - "${sources[@]}" \
  | podman import --quiet --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "base image $image built in $((SECONDS - start)) s ($(podman image inspect --format '{{.Size}}' "$image") bytes)" >&2
echo "$image"
