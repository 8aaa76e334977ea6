#!/usr/bin/env bash
# Build the aioprefork image from ../../Dockerfile with no container registry at all:
#   1. two Debian rootfs made by mmdebstrap from the Debian mirror: the runtime base (python3 +
#      python3-venv; the Dockerfile's BASE_IMAGE) and the build base, the same plus gcc and the
#      Python headers (BUILD_IMAGE), where the hot path is compiled with mypyc into a wheel that
#      the runtime stage installs (same Debian, same Python: same ABI);
#   2. a wheelhouse of aioprefork's dependencies and build requirements (setuptools, mypy, stubs)
#      for the base's Python, fetched by pip;
#   3. `podman build --pull=never` with PIP_NO_INDEX and the wheelhouse mounted into the build.
# Everything is cached under $CACHE (default build/deploy-cache, git-ignored); podman uses its own
# storage there, so the host's images are untouched. Needs root and: podman buildah runc
# mmdebstrap (make system-deps).
#
#   deploy/podman/build-offline.sh                 # -> localhost/aioprefork:offline
#   deploy/podman/podman.sh run --rm -p 127.0.0.1:8000:8000 localhost/aioprefork:offline
#
# Environment: CACHE, IMAGE, SUITE (bookworm), MIRROR (http://deb.debian.org/debian),
# STORAGE_DRIVER (overlay, else vfs), PYTHON (the python that runs pip, default python3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/deploy/podman"
export CACHE=${CACHE:-$ROOT/build/deploy-cache}
IMAGE=${IMAGE:-localhost/aioprefork:offline}
SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
PYTHON=${PYTHON:-python3}
BASE=localhost/aioprefork-base:$SUITE
PODMAN="$HERE/podman.sh"
mkdir -p "$CACHE"

step() { printf '[build-offline] %s\n' "$*" >&2; }

# 1. base images: Debian's Essential set + apt (variant apt: a little less than debian:*-slim,
#    quicker to make) + python3, python3-venv and passwd (the Dockerfile's useradd); the build
#    base adds what compiling needs (gcc, libc6-dev, python3-dev).
BUILD_BASE=localhost/aioprefork-build:$SUITE
make_base() {  # make_base IMAGE TARBALL PACKAGES
    local image=$1 rootfs=$2 packages=$3
    if [ ! -s "$rootfs" ]; then
        step "mmdebstrap $SUITE ($packages) -> $rootfs"
        mmdebstrap --quiet --format=tar --variant=apt --include="$packages" \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            "$SUITE" "$rootfs.partial" "$MIRROR" </dev/null
        mv "$rootfs.partial" "$rootfs"
    fi
    if ! "$PODMAN" image exists "$image"; then
        step "import $rootfs as $image"
        "$PODMAN" import --change 'CMD ["python3"]' "$rootfs" "$image" >/dev/null
    fi
}
make_base "$BASE" "$CACHE/rootfs-$SUITE.tar" python3,python3-venv,passwd
make_base "$BUILD_BASE" "$CACHE/rootfs-$SUITE-build.tar" \
    python3,python3-venv,passwd,gcc,libc6-dev,python3-dev

# 2. wheelhouse for the base's Python (binary wheels only; aioprefork itself is built in the image):
#    its dependencies and its build requirements (pip's isolated build environment is made from it).
PYVER=$("$PODMAN" run --rm --pull=never --network=none "$BASE" \
    python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
WHEELS="$CACHE/wheelhouse-py$PYVER"
STAMP="$WHEELS/.requirements"
REQS=$("$PYTHON" - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))
print("\n".join([*project["project"]["dependencies"], *project["build-system"]["requires"]]))
PY
)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$REQS" ]; then
    step "pip download (cp${PYVER/./}) -> $WHEELS"
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    platforms=()
    for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
               manylinux_2_5_x86_64 manylinux1_x86_64; do
        platforms+=(--platform "$tag")
    done
    # shellcheck disable=SC2086
    "$PYTHON" -m pip download --quiet --dest "$WHEELS" --only-binary=:all: \
        --python-version "$PYVER" --implementation cp "${platforms[@]}" $REQS
    printf '%s' "$REQS" > "$STAMP"
fi

# 3. the image, offline.
step "podman build $IMAGE (build $BUILD_BASE, runtime $BASE)"
"$PODMAN" build --pull=never --format docker --layers=true \
    --build-arg BASE_IMAGE="$BASE" --build-arg BUILD_IMAGE="$BUILD_BASE" \
    --build-arg PIP_NO_INDEX=1 --build-arg PIP_FIND_LINKS=/wheelhouse \
    --volume "$WHEELS:/wheelhouse:ro" \
    --tag "$IMAGE" --file "$ROOT/Dockerfile" "$ROOT" >&2
"$PODMAN" image prune --force >/dev/null  # the untagged stages of earlier builds
echo "$IMAGE"
