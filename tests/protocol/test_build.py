"""Which build of the hot path this run tests: pure Python, or the mypyc build (`make test` runs
the request-path tests twice, the second time with AIOPREFORK_EXPECT_COMPILED=1)."""

from __future__ import annotations

import ast
import importlib
import os
from pathlib import Path

SETUP = Path(__file__).resolve().parents[2] / "setup.py"


def _hot_path() -> list[str]:
    for node in ast.parse(SETUP.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "HOT_PATH":
            return list(ast.literal_eval(node.value))
    raise AssertionError("setup.py has no HOT_PATH list")


def test_the_hot_path_build_under_test() -> None:
    compiled = os.environ.get("AIOPREFORK_EXPECT_COMPILED") == "1"
    modules = [path.removesuffix(".py").replace("/", ".") for path in _hot_path()]
    assert modules, "nothing listed to compile"
    for name in modules:
        origin = importlib.import_module(name).__file__ or ""
        assert origin.endswith(".so") is compiled, (name, origin)


def test_the_compiled_only_memos_know_which_build_runs() -> None:
    """protocol/memo.COMPILED switches on the memos that pay only in the mypyc build."""
    from aioprefork.protocol import memo

    assert memo.COMPILED is (os.environ.get("AIOPREFORK_EXPECT_COMPILED") == "1")
