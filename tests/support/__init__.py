"""What every test tier shares: short temporary directories, free ports, processes and their
children. Importable as `support` from any test (tests/conftest.py puts tests/ on sys.path).

    from support import AIOPREFORK, children, free_port, short_tmpdir
"""

from __future__ import annotations

from support.dirs import short_tmpdir
from support.net import free_port
from support.procs import AIOPREFORK, REPO, children, clean_env, kill_group

__all__ = ["AIOPREFORK", "REPO", "children", "clean_env", "free_port", "kill_group", "short_tmpdir"]
