"""Build hook: with AIOPREFORK_MYPYC=1, the request hot path is compiled to C with mypyc.

Everything else about the package lives in pyproject.toml. The compiled modules are the same
source files (typed, mypy --strict clean); mypyc turns them into C extensions that run the
per-request Python about 20% faster (bench/README.md). Without the variable, or for editable
installs, the package is pure Python and behaves the same.

    AIOPREFORK_MYPYC=1 pip wheel --no-build-isolation .   # mypy (mypyc) and a C compiler needed
"""

from __future__ import annotations

import os

from setuptools import setup

# The modules every request runs through; kept in one list (the Makefile's compiled tree too).
HOT_PATH = [
    "aioprefork/protocol/http.py",
    "aioprefork/protocol/writer.py",
    "aioprefork/protocol/framing.py",
    "aioprefork/protocol/target.py",
    "aioprefork/protocol/connstate.py",
    "aioprefork/protocol/flow.py",
    "aioprefork/protocol/memo.py",
    "aioprefork/protocol/coalesce.py",
    "aioprefork/asgi/http.py",
    "aioprefork/asgi/host.py",
    "aioprefork/worker/stats.py",
    "aioprefork/http2/huffman.py",
    "aioprefork/http2/hpack.py",
    "aioprefork/http2/frames.py",
    "aioprefork/http2/request.py",
    "aioprefork/http2/stream.py",
    "aioprefork/http2/connection.py",
    "aioprefork/asgi/cycle.py",
]

if os.environ.get("AIOPREFORK_MYPYC") == "1":
    try:
        from mypyc.build import mypycify
    except ImportError:
        raise SystemExit(
            "AIOPREFORK_MYPYC=1 needs mypy (it provides mypyc) in the build environment: "
            "pip install mypy setuptools wheel, then build with --no-build-isolation"
        ) from None
    setup(ext_modules=mypycify(HOT_PATH, opt_level="3"))
else:
    setup()
