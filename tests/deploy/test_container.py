"""The Dockerfile, built and run for real with podman (rootful, runc, cgroupfs, explicit ulimits:
deploy/podman/containers.conf), from a Debian base that mmdebstrap makes from the Debian mirror
(no container registry involved: `--pull=never` everywhere). Ports are published on 127.0.0.1.

The first build takes about 90 s on 2 cores (rootfs, wheelhouse, image); later ones reuse the
rootfs and wheels cached under build/deploy-cache (git-ignored) and take about 20 s.

The image is built as by default: a build stage with a C compiler (build-offline.sh's second
rootfs: the same Debian plus gcc and python3-dev) compiles the hot path with mypyc, and the runtime
stage, without a compiler, installs that wheel; forcing the mypyc build (AIOPREFORK_MYPYC=1) with a
compiler-less build stage fails the build.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aioprefork.buildinfo import HOT_PATH_MODULES

from .support import DEPLOY, ROOT, http_get, run, tool, wait_for

pytestmark = pytest.mark.timeout(600)

PODMAN = str(DEPLOY / "podman" / "podman.sh")
IMAGE = "localhost/aioprefork:test"
# build-offline.sh's runtime base: the mmdebstrap rootfs (python3, python3-venv, passwd; no compiler).
BASE = f"localhost/aioprefork-base:{os.environ.get('SUITE', 'bookworm')}"
APP_FILE = Path(__file__).parent / "app.py"


def podman(*args: str, timeout: float = 60) -> str:
    result = run([PODMAN, *args], timeout=timeout)
    assert result.returncode == 0, f"podman {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout.strip()


@pytest.fixture(scope="module")
def image() -> str:
    for name in ("podman", "buildah", "runc", "mmdebstrap"):
        tool(name)
    env = {"IMAGE": IMAGE}
    if cache := os.environ.get("AIOPREFORK_DEPLOY_CACHE"):
        env["CACHE"] = cache
    built = run([str(DEPLOY / "podman" / "build-offline.sh")], timeout=540, env=env, cwd=ROOT)
    assert built.returncode == 0, f"image build failed:\n{built.stdout}\n{built.stderr[-5000:]}"
    return IMAGE


class Container:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ports: dict[int, int] = {}
        for line in podman("port", name).splitlines():  # "8000/tcp -> 127.0.0.1:39189"
            inside, _, outside = line.partition(" -> ")
            self.ports[int(inside.split("/")[0])] = int(outside.rpartition(":")[2])

    def inspect(self, fmt: str) -> str:
        return podman("inspect", self.name, "--format", fmt)

    def host_pid(self) -> int:
        return int(self.inspect("{{.State.Pid}}"))

    def get(self, path: str, port: int = 8000, timeout: float = 10) -> tuple[int, bytes]:
        return http_get("127.0.0.1", self.ports[port], path, timeout=timeout)

    def logs(self) -> str:
        result = run([PODMAN, "logs", self.name])  # the container's stdout and stderr, as such
        return (result.stdout + result.stderr)[-4000:]


@pytest.fixture
def container(image: str) -> Iterator[Callable[..., Container]]:
    """Start containers of the image (published on 127.0.0.1 only); removed by name afterwards."""
    names: list[str] = []

    def start(*options: str) -> Container:
        name = f"apf-test-{uuid.uuid4().hex[:10]}"
        names.append(name)
        podman(
            "run",
            "--detach",
            "--pull=never",
            "--name",
            name,
            "--health-interval=disable",  # no systemd timers here: checks are run by hand
            "--publish",
            "127.0.0.1::8000",
            "--publish",
            "127.0.0.1::9464",
            "--env",
            "AIOPREFORK_WORKERS=2",
            *options,
            image,
        )
        box = Container(name)
        try:
            wait_for(lambda: box.get("/readyz", 9464, timeout=1)[0] == 200, 30, "/readyz")
        except AssertionError:
            print(box.logs())
            raise
        return box

    try:
        yield start
    finally:
        for name in names:
            run([PODMAN, "rm", "--force", "--time", "0", name], timeout=60)


def test_image_serves_as_non_root_pid1_and_is_healthy(container: Callable[..., Container]) -> None:
    box = container()
    assert box.get("/") == (200, b"Hello, world!")  # the image's default app
    status, metrics = box.get("/metrics", 9464)
    assert status == 200
    assert b'aioprefork_info{pid="1",' in metrics  # the master is PID 1 of the container
    assert b"aioprefork_workers_active 2.0" in metrics

    # HEALTHCHECK from the Dockerfile, run by podman inside the container
    assert run([PODMAN, "healthcheck", "run", box.name]).returncode == 0
    assert box.inspect("{{.State.Health.Status}}") == "healthy"

    # non-root: the master and every worker run as the image's UID, seen from the host
    master = box.host_pid()
    pids = [master, *_children(master)]
    assert len(pids) == 3
    for pid in pids:
        assert _ids(pid) == (10001, 10001), pid

    # PID 1 reaps orphans: a process left behind by an exec'd shell is re-parented to the master
    # and reaped when it exits (no zombie), as an init must.
    podman("exec", box.name, "sh", "-c", "sleep 1 & exit 0")
    wait_for(lambda: any(_comm(p) == "sleep" for p in _children(master)), 5, "orphan adopted")
    time.sleep(1.5)
    states = {pid: _state(pid) for pid in _children(master)}
    assert all(state != "Z" for state in states.values()), states
    assert not any(_comm(p) == "sleep" for p in states)


def test_podman_stop_under_load_finishes_in_flight_requests(
    container: Callable[..., Container],
) -> None:
    box = container(
        "--volume",
        f"{APP_FILE}:/app/deploytest_app.py:ro",
        "--env",
        "AIOPREFORK_APP=deploytest_app:app",
        "--env",
        "AIOPREFORK_GRACEFUL_TIMEOUT=20s",
        "--env",
        "AIOPREFORK_ACCESS_LOG=false",
        "--stop-timeout",
        "40",
    )
    slow: list[tuple[int, bytes] | str] = []
    fast = {"ok": 0, "before_stop_errors": 0, "after_stop_errors": 0}
    stopping = threading.Event()
    done = threading.Event()

    def slow_request() -> None:
        try:
            slow.append(box.get("/slow?ms=3000", timeout=30))
        except OSError as exc:
            slow.append(repr(exc))

    def fast_loop() -> None:
        while not done.is_set():
            try:
                status, body = box.get("/", timeout=5)
                assert (status, body) == (200, b"ok")
                fast["ok"] += 1
            except (OSError, AssertionError):
                fast["after_stop_errors" if stopping.is_set() else "before_stop_errors"] += 1
                time.sleep(0.05)

    threads = [threading.Thread(target=slow_request) for _ in range(8)]
    threads.append(threading.Thread(target=fast_loop))
    for thread in threads:
        thread.start()
    wait_for(lambda: _active(box) >= 8, 10, "8 slow requests in flight")
    stopping.set()
    began = time.monotonic()
    podman("stop", box.name, timeout=60)  # STOPSIGNAL (TERM), then the container's 40 s
    took = time.monotonic() - began
    done.set()
    for thread in threads:
        thread.join(30)
    print(
        f"\n[podman stop] took {took:.2f} s; slow in flight: {slow}; fast requests ok="
        f"{fast['ok']} errors before stop={fast['before_stop_errors']} "
        f"after stop (listener closed)={fast['after_stop_errors']}"
    )
    assert slow == [(200, b"slow done")] * 8  # every in-flight request finished
    assert 1.0 < took < 20  # it waited for them, and no longer than graceful_timeout
    assert box.inspect("{{.State.ExitCode}}") == "0"
    assert fast["ok"] > 0 and fast["before_stop_errors"] == 0
    assert "master exiting" in box.logs()


def _hot_path() -> list[str]:
    """The modules setup.py compiles with mypyc, as module names."""
    return list(HOT_PATH_MODULES)


# Run inside the image: the Dockerfile's toolchain test (cc and Python.h), where each hot-path
# module was loaded from, which build tools the runtime venv could import, and what the server
# itself reports (aioprefork version, aioprefork_build_info).
PROBE = """
import importlib, importlib.util, json, os, shutil, sys, sysconfig
from aioprefork.buildinfo import hot_path_build
include = sysconfig.get_paths()["include"]
print(json.dumps({
    "toolchain": bool(shutil.which("cc")) and os.path.isfile(os.path.join(include, "Python.h")),
    "origins": {name: importlib.import_module(name).__file__ for name in sys.argv[1:]},
    "build_tools": [m for m in ("mypy", "mypyc", "librt", "wheel") if importlib.util.find_spec(m)],
    "reported": hot_path_build(),
}))
"""


def _probe(image: str) -> dict[str, Any]:
    out = podman(
        "run", "--rm", "--pull=never", "--network=none", "--entrypoint", "python3",
        image, "-c", PROBE, *_hot_path(),
    )  # fmt: skip
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def test_the_default_image_holds_the_compiled_hot_path(image: str) -> None:
    probe = _probe(image)
    assert probe["toolchain"] is False  # the compiler stayed in the build stage
    assert set(probe["origins"]) == set(_hot_path())
    for name, origin in probe["origins"].items():
        assert origin.startswith("/opt/venv/"), (name, origin)
        assert origin.endswith(".so"), (name, origin)
    assert probe["reported"] == "compiled"
    # mypy/mypyc (and mypy's runtime parts) stay in pip's throwaway build environment
    assert probe["build_tools"] == [], probe
    version = podman("run", "--rm", "--pull=never", "--network=none", image, "version")
    assert "hot path: compiled" in version, version


def test_forced_mypyc_build_fails_without_a_toolchain(image: str) -> None:
    """AIOPREFORK_MYPYC=1 never quietly ships the pure wheel: a build stage without a compiler
    stops the build."""
    assert _probe(image)["toolchain"] is False, f"{BASE} has a C toolchain now"
    tag = "localhost/aioprefork:test-forced-mypyc"
    try:
        result = run(
            [
                PODMAN, "build", "--pull=never", "--layers=false", "--network=none",
                "--build-arg", f"BASE_IMAGE={BASE}", "--build-arg", f"BUILD_IMAGE={BASE}",
                "--build-arg", "AIOPREFORK_MYPYC=1",
                "--tag", tag, "--file", str(ROOT / "Dockerfile"), str(ROOT),
            ],
            timeout=120,
        )  # fmt: skip
        assert result.returncode != 0, result.stdout[-3000:]
        assert "AIOPREFORK_MYPYC=1: the build image has no C compiler (cc)" in result.stderr, (
            result.stderr[-3000:]
        )
    finally:
        run([PODMAN, "rmi", "--force", tag], timeout=60)


def _active(box: Container) -> int:
    """Requests the workers report in flight (aioprefork_connection_slots{state="active"})."""
    with contextlib.suppress(OSError):
        for line in box.get("/metrics", 9464, timeout=2)[1].decode().splitlines():
            if line.startswith('aioprefork_connection_slots{state="active"}'):
                return int(float(line.split()[-1]))
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _status_field(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {key} for {pid}")


def _ids(pid: int) -> tuple[int, int]:
    return int(_status_field(pid, "Uid").split()[0]), int(_status_field(pid, "Gid").split()[0])


def _state(pid: int) -> str:
    try:
        return _status_field(pid, "State").split()[0]
    except OSError:
        return "gone"


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
