"""Which build of the request hot path this process runs: mypyc-compiled or pure Python.

The hot path (the modules in HOT_PATH) is compiled to C extensions by setup.py when the package
is built with a C compiler and the Python headers at hand; the same sources run interpreted
otherwise, about a third slower per request (bench/README.md). This module says which one is
loaded, for `aioprefork version`, the start-up log line, `aioprefork_build_info` and
/server-status, so nobody has to guess which speed they are measuring.

setup.py reads HOT_PATH from this file without importing the package: keep it free of imports
beyond the standard library.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
from typing import Final

__all__ = ["HOT_PATH", "HOT_PATH_MODULES", "describe", "hot_path_build"]

# The modules every request runs through, compiled together by mypyc (paths from the project root).
HOT_PATH: Final = (
    "aioprefork/http/protocol.py",
    "aioprefork/wire/writer.py",
    "aioprefork/wire/framing.py",
    "aioprefork/wire/target.py",
    "aioprefork/http/connstate.py",
    "aioprefork/wire/flow.py",
    "aioprefork/wire/memo.py",
    "aioprefork/http/coalesce.py",
    "aioprefork/http/cycle.py",
    "aioprefork/http/host.py",
    "aioprefork/asgi/cycle.py",
    "aioprefork/http/stats.py",
    "aioprefork/http/h2/huffman.py",
    "aioprefork/http/h2/hpack.py",
    "aioprefork/http/h2/frames.py",
    "aioprefork/http/h2/request.py",
    "aioprefork/http/h2/stream.py",
    "aioprefork/http/h2/connection.py",
)
HOT_PATH_MODULES: Final = tuple(p.removesuffix(".py").replace("/", ".") for p in HOT_PATH)

_EXTENSIONS: Final = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def classify(origins: list[str | None]) -> str:
    """ "compiled" when every hot-path module is a C extension, "pure" when none is, else "partial"
    (a broken install: some compiled modules shadowed or removed)."""
    compiled = sum(1 for o in origins if o is not None and o.endswith(_EXTENSIONS))
    if compiled == len(origins):
        return "compiled"
    return "pure" if compiled == 0 else "partial"


def hot_path_build() -> str:
    """ "compiled" | "pure" | "partial", from where the hot-path modules would be loaded from
    (found, not imported: the master asks before it has any reason to load them)."""
    origins: list[str | None] = []
    for name in HOT_PATH_MODULES:
        spec = importlib.util.find_spec(name)
        origins.append(None if spec is None else spec.origin)
    return classify(origins)


def describe(build: str) -> str:
    """The words after "hot path:" in `aioprefork version` and the start-up log line."""
    if build == "compiled":
        return "compiled (mypyc)"
    if build == "pure":
        return (
            "pure Python (installed without a C compiler or with AIOPREFORK_MYPYC=0; "
            "the compiled build needs about a third less CPU per request)"
        )
    return f"{build} (some hot-path modules compiled, some not: reinstall aioprefork)"
