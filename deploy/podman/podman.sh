#!/usr/bin/env bash
# podman with this project's own storage and settings (CACHE, default build/deploy-cache):
# rootful, runtime runc, cgroupfs, file events, explicit ulimits (containers.conf beside this
# script), storage overlay where the kernel allows it, else vfs. Used by build-offline.sh and
# tests/deploy/test_container.py; any podman subcommand works: deploy/podman/podman.sh ps -a
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${CACHE:-$(cd "$HERE/../.." && pwd)/build/deploy-cache}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}
# Runtime state (runroot, tmpdir) belongs on a tmpfs; here it may be on disk, so drop it when the
# machine has rebooted since it was written (what a tmpfs would have done).
boot_id=$(cat /proc/sys/kernel/random/boot_id)
if [ "$(cat "$CACHE/run/.boot_id" 2>/dev/null)" != "$boot_id" ]; then
    rm -rf "$CACHE/run" "$CACHE/tmp"
    mkdir -p "$CACHE/run" && echo "$boot_id" > "$CACHE/run/.boot_id"
fi
mkdir -p "$CACHE/storage" "$CACHE/run" "$CACHE/tmp"
driver=${STORAGE_DRIVER:-}
if [ -z "$driver" ]; then
    if [ -f "$CACHE/storage/.driver" ]; then
        driver=$(cat "$CACHE/storage/.driver")
    elif podman --root "$CACHE/storage" --runroot "$CACHE/run" --tmpdir "$CACHE/tmp" \
            --storage-driver overlay info >/dev/null 2>&1; then
        driver=overlay
    else
        driver=vfs
    fi
    echo "$driver" > "$CACHE/storage/.driver"
fi
exec podman --root "$CACHE/storage" --runroot "$CACHE/run" --tmpdir "$CACHE/tmp" \
    --storage-driver "$driver" "$@"
