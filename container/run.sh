#!/usr/bin/env bash
# Run the service image as Kubernetes runs it (infra/k8s): as the image's user `bentoml`
# (uid/gid 1034), on a read-only root filesystem with tmpfs mounts where the service writes
# owned by that user (/tmp, BENTOML_HOME=/var/lib/bentoml, FRAUD_STATE_DIR=/var/lib/fraud: see
# container/bento.Dockerfile.j2), no capabilities, no privilege escalation. The service listens on
# port 3000 in the container, published on 127.0.0.1:PORT. Detached; prints the container's id.
#
#   container/run.sh IMAGE [PORT] [NAME] [-- more podman run options, e.g. -e FRAUD_API_KEY=...]
#   podman logs -f NAME ; podman rm -f NAME
#
# The tmpfs mounts vanish with the container, the prediction log with them: for a log that stays,
# replace the /var/lib/fraud mount by a volume owned by uid 1034.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
[ $# -ge 1 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
image="$1"; port="${2:-3000}"; name="${3:-fraud-detector-$port}"
shift $(( $# < 3 ? $# : 3 )); [ "${1:-}" != "--" ] || shift
exec podman run --detach --name "$name" \
    --network bridge --publish "127.0.0.1:$port:3000" \
    --read-only \
    --tmpfs "/tmp:rw,nosuid,nodev,mode=1777" \
    --tmpfs "/var/lib/bentoml:rw,nosuid,nodev,U" \
    --tmpfs "/var/lib/fraud:rw,nosuid,nodev,U" \
    --cap-drop all --security-opt no-new-privileges \
    "$@" "$image"
