"""serve --reload: an edit is served after a graceful restart; a broken edit is rolled back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aioprefork.master.reloader import wanted

from .conftest import ROOT, StartMaster, alive, get, until

pytestmark = pytest.mark.timeout(60)

MAIN = """
from greeting import WORD


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": WORD})
"""


def save(path: Path, text: str) -> None:
    """Write as an editor does, and make sure the mtime moves even within one second."""
    path.write_text(text)
    later = time.time() + 1
    os.utime(path, (later, later))


async def test_an_edit_is_served_and_a_broken_one_rolled_back(
    start_master: StartMaster, tmp_path: Path
) -> None:
    (tmp_path / "reload_main.py").write_text(MAIN)
    greeting = tmp_path / "greeting.py"
    greeting.write_text('WORD = b"one"\n')
    master = start_master(
        "--workers", "2", "--app-dir", str(tmp_path), "--reload", "--reload-dir", str(tmp_path),
        app="reload_main:app",
    )  # fmt: skip
    await master.wait_ready(2)
    await until(lambda: "reload: watching" in master.stderr, 10, "the watcher", master)
    assert await get(master.port) == (200, b"one")

    async def body() -> bytes:
        return (await get(master.port))[1]

    save(greeting, 'WORD = b"two"\n')
    deadline = time.monotonic() + 20
    while await body() != b"two":
        assert time.monotonic() < deadline, master.stderr
    assert "greeting.py changed" in master.stderr

    save(greeting, 'WORD = b"thr\n')  # a syntax error: the new workers cannot boot
    await until(lambda: "rolled back" in master.stderr, 20, "the rollback", master)
    assert await get(master.port) == (200, b"two")  # the old code keeps serving
    log = master.stderr
    assert f"SyntaxError: unterminated string literal (detected at line 1) (at {greeting}:1)" in log
    assert "Traceback (most recent call last):" in log

    save(greeting, 'WORD = b"three"\n')
    deadline = time.monotonic() + 20
    while await body() != b"three":
        assert time.monotonic() < deadline, master.stderr
    assert master.proc.poll() is None

    # the watcher never outlives the master, even one killed with SIGKILL
    (watcher,) = [pid for pid, title in master.workers().items() if "reloader" in title]
    master.signal(signal.SIGKILL)
    await until(lambda: not alive(watcher), 10, "the watcher to exit", master)


def test_reload_without_watchfiles_says_what_to_install() -> None:
    """watchfiles is an optional extra: its absence is one line naming the install command."""
    script = (
        "import sys; sys.modules['watchfiles'] = None; "
        "sys.argv = ['aioprefork', 'serve', 'examples.hello:app', '--reload']; "
        "from aioprefork.cli.app import main; main()"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPREFORK_")}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=20,
        env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "aioprefork: config error: reload = True (from cli): needs the watchfiles package: "
        "pip install 'aioprefork[reload]' (or: pip install watchfiles)"
    )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/src/app/main.py", True),
        ("/src/app/templates/page.html", False),
        ("/src/app/.main.py.swp", False),
        ("/src/app/__pycache__/main.cpython-311.pyc", False),
        ("/src/app/.venv/lib/site.py", False),
        ("/src/app/main.py~", False),
    ],
)
def test_which_changes_restart_the_workers(path: str, expected: bool) -> None:
    assert wanted(path, ("*.py",), (".*", "*.py[cod]", "*~")) is expected


def test_include_and_exclude_globs() -> None:
    assert wanted("/src/app/templates/page.html", ("*.py", "*.html"), ())
    assert not wanted("/src/app/test_main.py", ("*.py",), ("test_*",))
