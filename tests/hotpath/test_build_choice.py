"""setup.py's choice between the compiled and the pure build: the decision as a pure function, the
toolchain probe against a real and a missing compiler, and pyproject's build requirements (an
isolated build must be able to type-check what mypyc compiles)."""

from __future__ import annotations

import importlib.machinery
import runpy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aioprefork.buildinfo import HOT_PATH, HOT_PATH_MODULES, classify

ROOT = Path(__file__).resolve().parents[2]
SETUP: dict[str, Any] = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")
decide: Callable[[str | None, bool, str | None, bool], tuple[bool, str | None]] = SETUP["decide"]


def test_the_default_build_compiles_when_it_can() -> None:
    assert decide(None, False, None, True) == (True, None)
    assert decide("", False, None, True) == (True, None)


def test_without_a_compiler_the_default_build_is_pure_with_one_warning_line() -> None:
    compile_it, warning = decide(None, False, "working C compiler (cc)", True)
    assert compile_it is False
    assert warning is not None and "\n" not in warning
    assert warning.startswith("aioprefork: building the pure-Python hot path: ")
    assert "no working C compiler (cc)" in warning
    assert "AIOPREFORK_MYPYC=0" in warning  # how to silence it
    _, warning = decide(None, False, None, False)  # no mypy in a non-isolated build
    assert warning is not None and "mypy (it provides mypyc)" in warning


def test_forcing_either_way() -> None:
    assert decide("0", False, None, True) == (False, None)  # no warning: asked for
    assert decide("0", False, "Python headers (x/Python.h)", False) == (False, None)
    assert decide("1", True, None, True) == (True, None)  # even editable
    with pytest.raises(
        SystemExit, match=r"^AIOPREFORK_MYPYC=1: cannot compile .*no Python headers"
    ):
        decide("1", False, "Python headers (x/Python.h)", True)
    with pytest.raises(SystemExit, match=r"must be 0 .pure. or 1 .compiled., not 'yes'"):
        decide("yes", False, None, True)


def test_editable_installs_stay_pure_and_quiet() -> None:
    assert decide(None, True, None, True) == (False, None)
    assert decide(None, True, "working C compiler (cc)", False) == (False, None)


def test_the_toolchain_probe_compiles_for_real(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine has gcc and Python.h (the suite's build needs them); a CC that does not exist
    is named as the missing piece."""
    assert SETUP["missing_toolchain"]() is None
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert SETUP["missing_toolchain"]() == "working C compiler (/nonexistent/cc)"


def test_build_requirements_carry_what_the_type_check_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requires = project["build-system"]["requires"]
    names = {r.split(">")[0].split("=")[0].split("[")[0] for r in requires}
    assert {"setuptools", "wheel", "mypy", "types-aiofiles"} <= names
    # every runtime dependency, with the same bound: mypyc follows the package's imports
    assert set(project["project"]["dependencies"]) <= set(requires)


def test_hot_path_list_and_its_module_names() -> None:
    assert SETUP["HOT_PATH"] == list(HOT_PATH)
    for path, module in zip(HOT_PATH, HOT_PATH_MODULES, strict=True):
        assert (ROOT / path).is_file(), path
        assert module == path.removesuffix(".py").replace("/", ".")


def test_classify_names_the_build() -> None:
    so = importlib.machinery.EXTENSION_SUFFIXES[0]
    assert classify([f"/x/http{so}", f"/x/writer{so}"]) == "compiled"
    assert classify(["/x/http.py", "/x/writer.py"]) == "pure"
    assert classify([f"/x/http{so}", "/x/writer.py"]) == "partial"
    assert classify([None, "/x/writer.py"]) == "pure"
