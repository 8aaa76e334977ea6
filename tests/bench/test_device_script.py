"""bench/device.sh refuses, in one line naming the fix, what would fail on the lent machine.

The script runs from a copy of it in a scratch tree (it works in the tree that holds it), so the
developer's own packed .device/ never matters here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "device.sh"


def _device_sh(tree: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tree / "bench").mkdir(exist_ok=True)
    shutil.copy(SCRIPT, tree / "bench" / "device.sh")
    return subprocess.run(
        ["bash", str(tree / "bench" / "device.sh"), *args],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )


def test_usage_is_one_line(tmp_path: Path) -> None:
    done = _device_sh(tmp_path, "serve")
    assert done.returncode == 1
    assert (
        done.stderr
        == "bench/device.sh: usage: bench/device.sh pack | run [bench/run.py arguments]\n"
    )


def test_run_without_a_pack_names_the_pack_step(tmp_path: Path) -> None:
    done = _device_sh(tmp_path, "run")
    assert done.returncode == 1
    assert "run 'bench/device.sh pack' where pip works, and carry .device" in done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_run_on_another_python_names_the_version_to_pack_for(tmp_path: Path) -> None:
    (tmp_path / ".device" / "whl").mkdir(parents=True)
    (tmp_path / ".device" / "python-version").write_text("Python 3.99.1\n")
    done = _device_sh(tmp_path, "run")
    have = "{}.{}".format(*sys.version_info[:2])
    assert done.returncode == 1
    assert done.stderr == (
        f"bench/device.sh: packed for Python 3.99, but {sys.executable} is {have}: "
        f"pack again with PACK_PYTHON=python{have}\n"
    )
    assert not (tmp_path / ".device" / "venv").exists()  # refused before building anything


def test_run_refuses_a_pack_made_from_other_sources(tmp_path: Path) -> None:
    """A pack older than the tree would measure the old compiled hot path: refused, one line."""
    (tmp_path / ".device" / "whl").mkdir(parents=True)
    version = "Python {}.{}.0\n".format(*sys.version_info[:2])
    (tmp_path / ".device" / "python-version").write_text(version)
    (tmp_path / ".device" / "source-hash").write_text("0" * 64 + "\n")
    (tmp_path / "aioprefork").mkdir()
    (tmp_path / "aioprefork" / "__init__.py").write_text("")
    (tmp_path / "setup.py").write_text("")
    (tmp_path / "pyproject.toml").write_text("")
    done = _device_sh(tmp_path, "run")
    assert done.returncode == 1
    assert done.stderr == (
        "bench/device.sh: .device/ was packed from other sources than this tree's aioprefork/: "
        "run 'bench/device.sh pack' again\n"
    )
    assert not (tmp_path / ".device" / "venv").exists()
