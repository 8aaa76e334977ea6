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
# machine has rebooted since it was written (what a tmpfs would have done). podman refuses a
# runroot longer than 50 characters, and a clone may sit anywhere: the runroot is a short private
# directory under the temporary directory, one per cache (its path's hash), made 0700.
RUNROOT=${RUNROOT:-${TMPDIR:-/tmp}/apf-run-$(printf %s "$CACHE" | sha1sum | cut -c1-12)}
if [ ${#RUNROOT} -gt 50 ]; then RUNROOT=/tmp/apf-run-$(printf %s "$CACHE" | sha1sum | cut -c1-12); fi
if [ -e "$RUNROOT" ] && [ "$(stat -c %u "$RUNROOT")" != "$(id -u)" ]; then
    echo "podman.sh: $RUNROOT is owned by another user; set RUNROOT" >&2; exit 2
fi
boot_id=$(cat /proc/sys/kernel/random/boot_id)
if [ "$(cat "$RUNROOT/.boot_id" 2>/dev/null)" != "$boot_id" ]; then
    rm -rf "$RUNROOT" "$CACHE/tmp"
    mkdir -p -m 0700 "$RUNROOT" && echo "$boot_id" > "$RUNROOT/.boot_id"
fi
chmod 0700 "$RUNROOT"
# A cache made when the runroot was "$CACHE/run" records that path in its database, and podman
# then refuses every command ("runroot ... does not match"): it is only a cache, start it afresh.
if [ -d "$CACHE/run" ]; then
    rm -rf "$CACHE/run" "$CACHE/storage" "$CACHE/tmp"
fi
mkdir -p "$CACHE/storage" "$CACHE/tmp"
driver=${STORAGE_DRIVER:-}
if [ -z "$driver" ]; then
    if [ -f "$CACHE/storage/.driver" ]; then
        driver=$(cat "$CACHE/storage/.driver")
    elif podman --root "$CACHE/storage" --runroot "$RUNROOT" --tmpdir "$CACHE/tmp" \
            --storage-driver overlay info >/dev/null 2>&1; then
        driver=overlay
    else
        driver=vfs
    fi
    echo "$driver" > "$CACHE/storage/.driver"
fi
exec podman --root "$CACHE/storage" --runroot "$RUNROOT" --tmpdir "$CACHE/tmp" \
    --storage-driver "$driver" "$@"
