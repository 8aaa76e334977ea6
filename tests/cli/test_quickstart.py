"""The README's Quick start, followed word for word in a fresh virtualenv, and `make run`.

The test plays the user: a checkout (a copy of this one, as `git clone` would give) beside the
app, a new virtualenv that already has FastAPI (the app's environment), and then every command of
the Quick start's shell blocks, in order, with the app and config file taken from its other
blocks. Two things are not verbatim: port 8000 becomes a free port (other servers run here),
and `curl` is retried until the server that the line before started in the background answers.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
NOT_IN_A_CLONE = (".venv", ".git", "build", "dist", "__pycache__", "*.egg-info", ".*_cache")

pytestmark = pytest.mark.timeout(600)


def quick_start() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n## Quick start\n")
    return text[start : text.index("\n## ", start + 1)]


def blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", quick_start(), re.M | re.S)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_readme_starts_with_the_two_commands_then_the_quick_start() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[2].split()[:2] == ["make", "run"]
    assert lines[3].split()[:2] == ["make", "test"]
    assert lines[5] == "## Quick start"
    section = quick_start()
    for link in ("config/reference.toml", "deploy/README.md"):
        assert f"]({link})" in section, link


def test_make_run_installs_the_runtime_only(tmp_path: Path) -> None:
    """`make run` pulled the 60-package test extra to serve hello; `make dev` has the tools."""
    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", f"VENV={venv}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    installs = [line for line in dry.stdout.splitlines() if " pip install" in line]
    assert any(line.endswith("pip install -q -e .") for line in installs), installs
    # the package as `pip install .` builds it (hot path compiled), no test tools anywhere
    assert installs[-1].endswith("pip install -q --no-deps --target build/run ."), installs
    assert "[test]" not in dry.stdout
    assert dry.stdout.rstrip().endswith("serve examples.hello:app --host 127.0.0.1 --port 8000")
    dev = subprocess.run(
        ["make", "--no-print-directory", "-n", "dev", f"VENV={venv}"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert "pip install -q -e '.[test]'" in dev.stdout


@contextlib.contextmanager
def reaped(pids: list[int]) -> Iterator[None]:
    """Kill every process group started (by pid) at the end, whatever happened."""
    try:
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def test_the_quick_start_word_for_word(tmp_path: Path) -> None:
    port = str(free_port())
    (python_block,) = blocks("python")
    (toml_block,) = blocks("toml")
    install, serve, with_config = (b.replace("8000", port) for b in blocks("sh"))
    toml_block = toml_block.replace("8000", port)

    shutil.copytree(ROOT, tmp_path / "aioprefork", ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    (tmp_path / "main.py").write_text(python_block)
    (tmp_path / "aioprefork.toml").write_text(toml_block)
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOPREFORK_", "PYTHON"))}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}", VIRTUAL_ENV=str(venv))
    env.update(COLUMNS="100", NO_COLOR="1")
    app_env = subprocess.run(
        ["pip", "install", "-q", "fastapi"], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip
    assert app_env.returncode == 0, app_env.stderr  # the app's environment, before aioprefork

    def sh(line: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    (line,) = install.splitlines()
    installed = sh(line)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "project.license" not in installed.stdout + installed.stderr  # no deprecation banner

    started: list[int] = []
    with reaped(started):
        lines = serve.splitlines()
        assert lines[0].endswith(" &")
        with (tmp_path / "serve.log").open("w") as log:
            background = subprocess.Popen(
                ["bash", "-c", f"exec {lines[0][:-2]}"], cwd=tmp_path, env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        started.append(background.pid)
        assert lines[1].startswith("curl ")
        deadline = time.monotonic() + 60
        while (answer := sh(lines[1], timeout=10)).returncode != 0:
            assert background.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.2)
        assert answer.stdout == '{"hello":"world"}'
        status = sh(lines[2], timeout=30)
        assert status.returncode == 0, status.stderr
        assert re.search(r"^aioprefork 0\.1\.0: master pid \d+, running", status.stdout, re.M)
        assert "workers:     2 active" in status.stdout, status.stdout
        stop = sh(lines[3], timeout=60)
        assert stop.returncode == 0, stop.stderr
        assert background.wait(timeout=30) == 0

        check, daemon, status_line, graceful, stop_line = with_config.splitlines()
        checked = sh(check, timeout=60)
        assert checked.returncode == 0, checked.stderr
        assert checked.stderr.strip() == "Syntax OK"
        detached = sh(daemon, timeout=60)
        assert detached.returncode == 0, detached.stderr
        started.append(int((tmp_path / "aioprefork.pid").read_text()))
        status = sh(status_line, timeout=30)
        assert status.returncode == 0, status.stderr
        assert "workers:     2 active" in status.stdout, status.stdout
        print(status.stdout)
        restarted = sh(graceful, timeout=120)
        assert restarted.returncode == 0, restarted.stderr
        assert "graceful restart done: generation 2 (2 workers)" in restarted.stdout
        stopped = sh(stop_line, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        assert "has exited" in stopped.stdout
