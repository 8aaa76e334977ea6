"""Which build of the hot path this run tests: pure Python, or the mypyc build (`make test` runs
the request-path tests twice, the second time with AIOPREFORK_EXPECT_COMPILED=1)."""

from __future__ import annotations

import importlib
import os

from aioprefork.buildinfo import HOT_PATH_MODULES, hot_path_build


def test_the_hot_path_build_under_test() -> None:
    compiled = os.environ.get("AIOPREFORK_EXPECT_COMPILED") == "1"
    assert HOT_PATH_MODULES, "nothing listed to compile"
    for name in HOT_PATH_MODULES:
        origin = importlib.import_module(name).__file__ or ""
        assert origin.endswith(".so") is compiled, (name, origin)
    # what `aioprefork version`, the start-up line and aioprefork_build_info report
    assert hot_path_build() == ("compiled" if compiled else "pure")


def test_the_compiled_only_memos_know_which_build_runs() -> None:
    """protocol/memo.COMPILED switches on the memos that pay only in the mypyc build."""
    from aioprefork.wire import memo

    assert memo.COMPILED is (os.environ.get("AIOPREFORK_EXPECT_COMPILED") == "1")
