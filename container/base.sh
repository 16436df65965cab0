#!/usr/bin/env bash
# Build the service image's base from Debian's packages only (no image registry is reachable):
# debootstrap --variant=minbase, imported into podman, then container/base.Containerfile (Python
# 3.11, libgomp1, security updates) squashed into one layer. Its name is service/bentofile.yaml's
# docker.base_image (the Bento's FROM): localhost/fraud-detector-base:bookworm.
#
# Cached in podman's store: the image carries a label with the hash of its recipe (this script and
# the Containerfile), and an image with the same hash is kept as it is. A rebuild removes the
# previous base unless an image still uses it.
# Needs root, podman and debootstrap (`make container-tools`). Usage: container/base.sh [--force]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
BASE_IMAGE="$(awk '$1 == "base_image:" { gsub(/"/, "", $2); print $2 }' "$root/service/bentofile.yaml")"
ROOTFS_IMAGE=localhost/fraud-detector-rootfs:bookworm   # the FROM of base.Containerfile
SUITE=bookworm

log() { printf '[base %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

[ -n "$BASE_IMAGE" ] || { log "service/bentofile.yaml names no docker.base_image"; exit 1; }
recipe="$(cat "${BASH_SOURCE[0]}" "$here/base.Containerfile" | sha256sum | cut -c1-16)"
if [ "${1:-}" != "--force" ] && podman image exists "$BASE_IMAGE" &&
   [ "$(podman image inspect --format '{{ index .Labels "recipe" }}' "$BASE_IMAGE")" = "$recipe" ]; then
    log "$BASE_IMAGE is up to date (recipe $recipe); --force rebuilds it"
    exit 0
fi

previous="$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE" 2>/dev/null || true)"

# The machine's Debian mirror (what apt uses here), else Debian's own.
mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Created-By: Packages' 2>/dev/null |
          awk -v suite="$SUITE" '$2 == suite { print $1; exit }')"
mirror="${mirror:-http://deb.debian.org/debian/}"

work="$(mktemp -d "${TMPDIR:-/var/tmp}/fraud-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
started=$SECONDS
log "debootstrap --variant=minbase $SUITE from $mirror (minutes) ..."
debootstrap --variant=minbase "$SUITE" "$work/rootfs" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; log "debootstrap failed"; exit 1; }
log "debootstrap done in $((SECONDS - started)) s ($(du -sh "$work/rootfs" | cut -f1)); importing as $ROOTFS_IMAGE"
tar --numeric-owner -C "$work/rootfs" -c . | podman import --quiet - "$ROOTFS_IMAGE" > /dev/null
rm -rf "$work/rootfs"

log "building $BASE_IMAGE from container/base.Containerfile ..."
podman build --pull=never --isolation chroot --network host --squash-all \
    -v /etc/apt/sources.list.d:/etc/apt/sources.list.d:ro \
    --label recipe="$recipe" -f "$here/base.Containerfile" -t "$BASE_IMAGE" "$here"
podman rmi --force "$ROOTFS_IMAGE" > /dev/null
if [ -n "$previous" ] && [ "$(podman image inspect --format '{{.Id}}' "$BASE_IMAGE")" != "$previous" ]; then
    podman rmi "$previous" > /dev/null 2>&1 || log "the previous base ${previous:0:12} stays: images built on it use it"
fi
log "$BASE_IMAGE built in $((SECONDS - started)) s: $(podman image inspect --format '{{.Size}}' "$BASE_IMAGE") bytes"
