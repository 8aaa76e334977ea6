"""Build hook: the request hot path is compiled to C with mypyc whenever it can be.

Everything else about the package lives in pyproject.toml. The compiled modules are the same
source files (typed, mypy --strict clean; the list is HOT_PATH in aioprefork/buildinfo.py); mypyc
turns them into C extensions that serve a request with about a third less CPU (bench/README.md).

    pip install .              # compiled when a C compiler and Python.h are here, else pure + warning
    pip wheel .                # the same (mypy and the type stubs come from build-system.requires)
    AIOPREFORK_MYPYC=1 pip wheel .   # compiled or the build fails, naming what is missing
    AIOPREFORK_MYPYC=0 pip wheel .   # pure Python, no warning
    pip install -e .           # editable installs stay pure: no C extension shadows a source file

`aioprefork version` says which build is installed.
"""

from __future__ import annotations

import os
import runpy
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOT_PATH: list[str] = list(runpy.run_path(str(HERE / "aioprefork" / "buildinfo.py"))["HOT_PATH"])

SPEEDUP = "the compiled hot path serves a request with about a third less CPU"


def decide(
    forced: str | None, editable: bool, missing: str | None, has_mypyc: bool
) -> tuple[bool, str | None]:
    """(compile?, warning line or None) for AIOPREFORK_MYPYC `forced`, an editable build or not,
    the missing piece of the C toolchain (None when a test compile worked) and whether mypyc
    imports. A forced build that cannot happen, or a bad value, raises SystemExit with the fix."""
    if forced not in (None, "", "0", "1"):
        raise SystemExit(f"AIOPREFORK_MYPYC must be 0 (pure) or 1 (compiled), not {forced!r}")
    if forced == "0":
        return False, None
    if forced != "1" and editable:
        return False, None
    if not has_mypyc:
        missing = "mypy (it provides mypyc) in the build environment"
    if missing is None:
        return True, None
    if forced == "1":
        raise SystemExit(
            f"AIOPREFORK_MYPYC=1: cannot compile the hot path: no {missing}; install it "
            "(Debian: apt install gcc python3-dev) or build with AIOPREFORK_MYPYC=0"
        )
    return False, (
        f"aioprefork: building the pure-Python hot path: no {missing} "
        f"({SPEEDUP}: apt install gcc python3-dev, or AIOPREFORK_MYPYC=0 to silence this)"
    )


def missing_toolchain() -> str | None:
    """What stops compiling a C extension here, or None: compile a file that includes Python.h."""
    include = sysconfig.get_path("include")
    if not os.path.isfile(os.path.join(include, "Python.h")):
        return f"Python headers ({include}/Python.h)"
    try:
        from setuptools._distutils.ccompiler import new_compiler
        from setuptools._distutils.sysconfig import customize_compiler
    except ImportError:  # pragma: no cover - setuptools always ships its distutils
        return "setuptools distutils"
    compiler = new_compiler()
    customize_compiler(compiler)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as f:
            f.write("#include <Python.h>\nint aioprefork_probe(void) { return 0; }\n")
        try:
            compiler.compile([source], output_dir=tmp, include_dirs=[include])
        except Exception:  # CompileError, from whichever distutils the compiler class uses
            command = getattr(compiler, "compiler_so", None) or ["cc"]
            return f"working C compiler ({command[0]})"
    return None


def _warn(line: str) -> None:
    """A UserWarning: pip shows those from a build backend (it hides the backend's output)."""
    warnings.warn(line, UserWarning, stacklevel=2)


def _has_mypyc() -> bool:
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    from setuptools import setup

    forced = os.environ.get("AIOPREFORK_MYPYC")
    # PEP 660 builds run the `editable_wheel` command (`develop` for the legacy path).
    editable = any(arg in ("editable_wheel", "develop") for arg in sys.argv[1:])
    # Only a build that makes the package needs the probe: egg_info and sdist do not compile.
    building = any(arg in ("bdist_wheel", "build", "build_ext", "install") for arg in sys.argv[1:])
    if not building and not editable:
        setup()
        return
    probe = forced == "1" or (forced != "0" and not editable)
    missing = missing_toolchain() if probe else None
    compile_it, warning = decide(forced, editable, missing, forced == "0" or _has_mypyc())
    if warning:
        _warn(warning)
    if not compile_it:
        setup()
        return
    from mypyc.build import mypycify

    print("aioprefork: compiling the hot path with mypyc", file=sys.stderr)
    try:
        extensions = mypycify(HOT_PATH, opt_level="3")
    except (Exception, SystemExit) as exc:  # mypyc reports type errors by SystemExit
        if forced == "1":
            raise
        _warn(
            f"aioprefork: building the pure-Python hot path: mypyc failed ({exc}); "
            "report it, or AIOPREFORK_MYPYC=0 to silence this"
        )
        setup()
        return
    setup(ext_modules=extensions)


if __name__ == "__main__":
    main()
