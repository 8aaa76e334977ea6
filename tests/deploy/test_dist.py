"""What `make dist` ships: an sdist, and a wheel built from it (build isolation on, as `pip install`
does) that holds the mypyc-compiled hot path for this platform; installed into a fresh venv, it
says it is compiled and serves requests.

`make dist` builds dist/ and runs this test on those files (AIOPREFORK_DIST_DIR); on its own the
test builds them into a temporary directory (about a minute on 2 cores: the isolated build
installs setuptools, mypy and the stubs, then mypyc compiles the hot path). The build and the fresh
venv get their packages from the configured package index, as any `pip install` does.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import pytest

from aioprefork.buildinfo import HOT_PATH_MODULES

from .support import ROOT, answers, free_port, http_get, run, start, wait_for

pytestmark = pytest.mark.timeout(420)

APP = 'async def app(scope, receive, send):\n    assert scope["type"] == "http"\n' + (
    "    await send({'type': 'http.response.start', 'status': 200, "
    "'headers': [(b'content-type', b'text/plain')]})\n"
    "    await send({'type': 'http.response.body', 'body': b'served from the wheel'})\n"
)


def _artefacts(tmp_path: Path) -> tuple[Path, Path]:
    given = os.environ.get("AIOPREFORK_DIST_DIR")
    out = Path(given) if given else tmp_path / "dist"
    if not given:
        built = run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], timeout=360)
        assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    sdists, wheels = sorted(out.glob("aioprefork-*.tar.gz")), sorted(out.glob("aioprefork-*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    return sdists[0], wheels[0]


def test_the_wheel_from_the_sdist_is_compiled_and_serves(tmp_path: Path) -> None:
    sdist, wheel = _artefacts(tmp_path)
    # a platform wheel for this interpreter, not py3-none-any
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"-{tag}-{tag}-" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    for module in HOT_PATH_MODULES:
        stem = module.replace(".", "/")
        assert any(n.startswith(stem + ".") and n.endswith(".so") for n in names), module
    assert sdist.stat().st_size > 0

    venv = tmp_path / "venv"
    assert run([sys.executable, "-m", "venv", str(venv)], timeout=120).returncode == 0
    env = {"PYTHONPATH": "", "AIOPREFORK_MYPYC": ""}
    installed = run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], timeout=240, env=env)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    version = run([str(venv / "bin" / "aioprefork"), "version"], env=env, cwd=tmp_path)
    assert "; hot path: compiled (mypyc)" in version.stdout, version.stdout + version.stderr

    (tmp_path / "wheelapp.py").write_text(APP)
    port, metrics = free_port(), free_port()
    argv = [str(venv / "bin" / "aioprefork"), "serve", "wheelapp:app", "--workers", "1"]
    argv += ["--bind", f"127.0.0.1:{port}", "--metrics-bind", f"127.0.0.1:{metrics}"]
    argv += ["--pid-file", str(tmp_path / "pid"), "--ctl-socket", str(tmp_path / "ctl.sock")]
    server = start(argv, tmp_path / "serve.log", env=env, cwd=tmp_path)
    try:
        wait_for(answers("127.0.0.1", port, "/"), 30, "the wheel's server")
        assert http_get("127.0.0.1", port, "/") == (200, b"served from the wheel")
        status, body = http_get("127.0.0.1", metrics, "/metrics")
        assert status == 200 and b'aioprefork_build_info{hot_path="compiled"' in body
        assert "hot path compiled" in server.output()  # the start-up line
    finally:
        server.stop()
