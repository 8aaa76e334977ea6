"""What every test tier shares. Importable as `support` from any test (tests/conftest.py puts
tests/ on sys.path), so no test imports a helper from another test folder.

    support.dirs, .net, .procs   short temporary directories, free ports, the aioprefork script,
                                 a process's children, killing a process group
                                 (from support import AIOPREFORK, children, free_port, short_tmpdir)
    support.launch               `aioprefork serve` as a real process on an inherited socket
    support.http_wire            raw HTTP/1.1 client, small apps, ServerThread (in-process server)
    support.serving              the `serve` fixture over ServerThread
"""

from __future__ import annotations

from support.dirs import short_tmpdir
from support.net import free_port
from support.procs import AIOPREFORK, REPO, children, clean_env, kill_group

__all__ = ["AIOPREFORK", "REPO", "children", "clean_env", "free_port", "kill_group", "short_tmpdir"]
