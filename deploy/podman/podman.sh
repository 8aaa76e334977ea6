#!/usr/bin/env bash
# podman with this project's own storage and settings (CACHE, default build/deploy-cache):
# rootful, runtime runc, cgroupfs, file events, explicit ulimits (containers.conf beside this
# script), storage overlay where the kernel allows it, else vfs. Used by build-offline.sh and
# tests/deploy/test_container.py; any podman subcommand works: deploy/podman/podman.sh ps -a
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-$(cd "$HERE/../.." && pwd)/build/deploy-cache}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}
mkdir -p "$CACHE/storage" "$CACHE/run"
driver=${STORAGE_DRIVER:-}
if [ -z "$driver" ]; then
    if [ -f "$CACHE/storage/.driver" ]; then
        driver=$(cat "$CACHE/storage/.driver")
    elif podman --root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver overlay \
            info >/dev/null 2>&1; then
        driver=overlay
    else
        driver=vfs
    fi
    echo "$driver" > "$CACHE/storage/.driver"
fi
exec podman --root "$CACHE/storage" --runroot "$CACHE/run" --storage-driver "$driver" "$@"
