#!/usr/bin/env bash
# The 16-core scaling run (issue 8) on a lent machine that cannot reach any package registry.
#
#   bench/device.sh pack               # here, with network: fills .device/ (git-ignored)
#   bench/device.sh run [run.py args]  # there, in the repository root, .device/ carried along
#
# `pack` builds everything for the other machine's Python (3.12 by default: PACK_PYTHON names
# the interpreter): the wheels of every runtime and bench dependency, the mypyc-compiled hot path,
# and wrk with the shared libraries it needs that a stock image may lack. `run` checks the pack
# was made from this tree's sources, makes a venv from those wheels only (--no-index), puts the
# compiled tree where bench/run.py expects it and runs the scaling benchmark; with no arguments,
# the issue's setting: N = 1, 2, 4, 8 workers on cores 0-7, wrk on cores 8-15, hello, every
# server. Results go to $OUT (else bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=.device

die() { echo "bench/device.sh: $*" >&2; exit 1; }

# What the pack was built from: `run` refuses a pack older than the tree it would measure.
source_hash() {
    { find aioprefork -name '*.py' -print0 | sort -z | xargs -0 sha256sum; sha256sum setup.py pyproject.toml; } \
        | sha256sum | cut -d' ' -f1
}

pack() {
    local py=${PACK_PYTHON:-python3.12}
    command -v "$py" >/dev/null || die "no $py here: set PACK_PYTHON to the other machine's Python version"
    command -v wrk >/dev/null || die "no wrk here: run 'make bench' once (it installs wrk), then pack"
    rm -rf "$DEVICE" && mkdir -p "$DEVICE/whl" "$DEVICE/wrk/lib"
    local build=$DEVICE/buildenv
    "$py" -m venv "$build"
    "$build/bin/pip" install -q --upgrade pip
    "$build/bin/pip" install -q -e '.[bench]' mypy types-aiofiles 'setuptools>=77' wheel
    # The wheels of exactly what that venv resolved (mypy and the editable project aside).
    "$build/bin/pip" freeze --exclude-editable | grep -viE '^(mypy|mypy.extensions|librt|pathspec|types-aiofiles|ast.serialize)=' \
        > "$DEVICE/requirements.txt"
    "$build/bin/pip" download -q --only-binary=:all: --no-deps -d "$DEVICE/whl" \
        -r "$DEVICE/requirements.txt"
    "$build/bin/pip" wheel -q --no-deps --no-build-isolation -w "$DEVICE/whl" .
    # The hot path compiled for that Python, laid out like the Makefile's build/compiled.
    mkdir -p "$DEVICE/compiled"
    cp -r aioprefork "$DEVICE/compiled/"
    find "$DEVICE/compiled" -name __pycache__ -prune -exec rm -rf {} +
    (cd "$DEVICE/compiled" && AIOPREFORK_MYPYC=1 "$OLDPWD/$build/bin/python" "$OLDPWD/setup.py" -q build_ext --inplace)
    rm -rf "$DEVICE/compiled/build"
    # wrk and the libraries it links that are not part of glibc.
    cp "$(command -v wrk)" "$DEVICE/wrk/wrk"
    ldd "$(command -v wrk)" | awk '/=> \// {print $3}' | grep -vE '/(libc|libm|libpthread|libdl|librt|libgcc_s)\.so' \
        | xargs -r -I{} cp -L {} "$DEVICE/wrk/lib/"
    rm -rf "$build"
    "$py" --version > "$DEVICE/python-version"
    source_hash > "$DEVICE/source-hash"
    du -sh "$DEVICE"
    echo "packed for $(cat "$DEVICE/python-version"); carry '$DEVICE' and run: bench/device.sh run"
}

run() {
    [ -d "$DEVICE/whl" ] || die "no $DEVICE/ here: run 'bench/device.sh pack' where pip works, and carry $DEVICE"
    local py=${PYTHON:-python3}
    local want have
    want=$(cut -d' ' -f2 "$DEVICE/python-version" | cut -d. -f1,2)
    have=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    [ "$want" = "$have" ] || die "packed for Python $want, but $py is $have: pack again with PACK_PYTHON=python$have"
    [ "$(cat "$DEVICE/source-hash" 2>/dev/null)" = "$(source_hash)" ] \
        || die "$DEVICE/ was packed from other sources than this tree's aioprefork/: run 'bench/device.sh pack' again"
    rm -rf "$DEVICE/venv"
    "$py" -m venv "$DEVICE/venv"
    "$DEVICE/venv/bin/python" -m pip install -q --no-index --no-deps --no-compile "$DEVICE"/whl/*.whl
    rm -rf build/compiled && mkdir -p build && cp -r "$DEVICE/compiled" build/compiled
    export PATH="$PWD/$DEVICE/wrk:$PATH" LD_LIBRARY_PATH="$PWD/$DEVICE/wrk/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    wrk --version 2>&1 | head -1 || true
    echo "cores: $(nproc), python: $("$DEVICE/venv/bin/python" --version)"
    local out=${OUT:-bench/results}
    if [ $# -eq 0 ]; then
        set -- --scaling 1,2,4,8 --servers aioprefork,uvicorn,gunicorn,granian,raw \
            --rounds 1 --duration 5 --connections 256 --server-cores 0-7 --client-cores 8-15
    fi
    PYTHONUNBUFFERED=1 "$DEVICE/venv/bin/python" bench/run.py "$@" --out-dir "$out"
}

case "${1:-}" in
    pack) pack ;;
    run) shift; run "$@" ;;
    *) die "usage: bench/device.sh pack | run [bench/run.py arguments]" ;;
esac
