"""A real HAProxy (deploy/haproxy/haproxy.cfg, unchanged) on loopback in front of two aioprefork
instances, with its health checks on each master's /readyz.

Under continuous load from a client bound to 127.0.0.2: `aioprefork ctl graceful` on one instance,
then the other, then HAProxy drains the first (runtime API) and `aioprefork ctl stop` ends it.
Zero failed requests, every response names 127.0.0.2 as the client (HAProxy connects from
127.0.0.1, a trusted peer, so X-Forwarded-For is honoured; or PROXY v2 in the second test), and
the counts are printed for the report (`pytest -s`).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import short_tmpdir

from .support import (
    AIOPREFORK,
    DEPLOY,
    Proc,
    Procs,
    answers,
    free_port,
    run,
    serve_argv,
    start,
    tool,
    wait_for,
)

pytestmark = pytest.mark.timeout(120)

CLIENT_ADDR = "127.0.0.2"  # the "real client": not HAProxy's address (127.0.0.1)
APP_DIR = str(Path(__file__).parent)


@dataclass
class Instance:
    name: str
    port: int
    metrics: int
    run_dir: Path
    proc: Proc

    def ctl(self, *args: str, timeout: float = 30) -> str:
        result = run(
            [AIOPREFORK, "ctl", *args, "--ctl-socket", str(self.run_dir / "ctl.sock")],
            timeout=timeout,
        )
        assert result.returncode == 0, f"ctl {args} on {self.name}: {result.stdout}{result.stderr}"
        return result.stdout

    def generation(self) -> int:
        return int(json.loads(self.ctl("status", "--json"))["generation"])


@dataclass
class Stack:
    procs: Procs
    haproxy_port: int
    admin_socket: Path
    instances: list[Instance] = field(default_factory=list)

    def admin(self, command: str) -> str:
        """One HAProxy runtime API command."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.admin_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """`show stat` rows of the backend's servers: name -> {status, scur, ...}."""
        lines = self.admin("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","), strict=False)) for line in lines[1:] if line]
        return {
            r["svname"]: r
            for r in rows
            if r.get("pxname") == "be_aioprefork" and r["svname"] not in ("BACKEND", "FRONTEND")
        }

    def wait_status(self, server: str, prefix: str, timeout: float = 10) -> None:
        wait_for(
            lambda: self.servers()[server]["status"].startswith(prefix),
            timeout,
            f"HAProxy to see {server} {prefix}",
        )


@contextlib.contextmanager
def start_stack(tmp: Path, *, proxy_protocol: bool) -> Iterator[Stack]:
    procs = Procs()
    env = {
        "AIOPREFORK_APP_DIR": APP_DIR,
        "AIOPREFORK_ACCESS_LOG": "false",
        "AIOPREFORK_GRACEFUL_TIMEOUT": "10s",
        "AIOPREFORK_PROXY_PROTOCOL": "true" if proxy_protocol else "false",
    }
    try:
        stack = Stack(procs, 0, tmp / "haproxy.sock")  # haproxy_port: set when it starts
        for name in ("app1", "app2"):
            run_dir = tmp / name
            run_dir.mkdir()
            port, metrics = free_port(), free_port()
            argv = serve_argv("app:app", port, metrics, run_dir, "--workers", "2")
            proc = procs.add(start(argv, tmp / f"{name}.log", env=env, name=name))
            stack.instances.append(Instance(name, port, metrics, run_dir, proc))
        for inst in stack.instances:
            wait_for(answers("127.0.0.1", inst.metrics, "/readyz"), 30, f"{inst.name} ready")
        a, b = stack.instances
        config = str(DEPLOY / "haproxy" / "haproxy.cfg")
        # HAProxy's port is picked only now, and picked again if it was taken meanwhile: the
        # instances' readiness probes and other tests' clients use ephemeral ports too.
        for attempt in range(3):
            stack.haproxy_port = free_port()
            haproxy_env = {
                "HAPROXY_BIND": f"127.0.0.1:{stack.haproxy_port}",
                "HAPROXY_ADMIN_SOCKET": str(stack.admin_socket),
                "APP1_ADDR": f"127.0.0.1:{a.port}",
                "APP1_CHECK": str(a.metrics),
                "APP2_ADDR": f"127.0.0.1:{b.port}",
                "APP2_CHECK": str(b.metrics),
                "AIOPREFORK_PROXY_PROTOCOL": "true" if proxy_protocol else "",
            }
            haproxy = procs.add(
                start(
                    [tool("haproxy"), "-db", "-f", config],
                    tmp / f"haproxy-{attempt}.log",
                    env=haproxy_env,
                )
            )

            def admin_up(proc: Proc = haproxy) -> bool:
                return stack.admin_socket.exists() or proc.popen.poll() is not None

            wait_for(
                admin_up,
                10,
                "HAProxy's admin socket",
            )
            if haproxy.popen.poll() is None or "Address already in use" not in haproxy.output():
                break
        assert haproxy.popen.poll() is None, f"HAProxy exited: {haproxy.output()}"
        for server in ("app1", "app2"):
            stack.wait_status(server, "UP")
        yield stack
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()


@pytest.fixture
def run_tmp() -> Iterator[Path]:
    """A short directory (AF_UNIX paths are limited to 107 bytes)."""
    with short_tmpdir("apf-lb-") as path:
        yield path


class Load:
    """Keep-alive clients hammering HAProxy from CLIENT_ADDR until stopped; every failure counted."""

    def __init__(self, port: int, clients: int = 6) -> None:
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self.clients_seen: Counter[str] = Counter()
        self.servers_seen: Counter[int] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.ok, len(self.failures)

    def _loop(self) -> None:
        import http.client

        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(
                        "127.0.0.1", self.port, timeout=10, source_address=(CLIENT_ADDR, 0)
                    )
                conn.request("GET", "/client")
                response = conn.getresponse()
                body = response.read()
                if response.status != 200:
                    raise AssertionError(f"status {response.status}: {body[:200]!r}")
                seen = json.loads(body)
                with self._lock:
                    self.ok += 1
                    self.clients_seen[seen["client"]] += 1
                    self.servers_seen[seen["server"][1]] += 1
            except Exception as exc:
                with self._lock:
                    self.failures.append(f"{time.strftime('%X')} {type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def wait_requests(self, more: int, timeout: float = 10) -> None:
        """Let at least `more` further requests complete (load really flows at this step)."""
        target = self.snapshot()[0] + more
        wait_for(lambda: self.snapshot()[0] >= target, timeout, f"{more} more requests", 0.02)


def report(label: str, load: Load) -> None:
    print(
        f"\n[{label}] requests ok={load.ok} failed={len(load.failures)} "
        f"clients_seen={dict(load.clients_seen)} by_instance_port={dict(load.servers_seen)}"
    )


def test_rolling_graceful_restarts_and_drained_stop_lose_no_request(run_tmp: Path) -> None:
    with start_stack(run_tmp, proxy_protocol=False) as stack:
        a, b = stack.instances
        with Load(stack.haproxy_port) as load:
            load.wait_requests(200)
            for inst in (a, b):  # one instance at a time, the other carries the traffic
                before = inst.generation()
                inst.ctl("graceful", timeout=60)
                assert inst.generation() == before + 1
                load.wait_requests(200)
            # Take app1 out: drain in HAProxy, wait for its connections to finish, then stop.
            stack.admin("set server be_aioprefork/app1 state drain")
            wait_for(lambda: stack.servers()["app1"]["scur"] == "0", 10, "app1 drained")
            a.ctl("stop", timeout=30)
            assert a.proc.popen.wait(15) == 0
            stack.wait_status("app1", "DOWN")  # the health check (/readyz) sees it gone
            served_by_a = load.servers_seen[a.port]
            load.wait_requests(200)
            assert load.servers_seen[a.port] == served_by_a  # nothing reached the stopped one
        report("xff", load)
        assert load.failures == [], load.failures[:20]
        assert load.ok >= 1000
        assert set(load.clients_seen) == {CLIENT_ADDR}  # X-Forwarded-For from a trusted peer
        assert load.servers_seen[a.port] > 0 and load.servers_seen[b.port] > 0


def test_proxy_protocol_v2_carries_the_client_through_a_graceful_restart(run_tmp: Path) -> None:
    with start_stack(run_tmp, proxy_protocol=True) as stack:
        a, b = stack.instances
        with Load(stack.haproxy_port, clients=4) as load:
            load.wait_requests(200)
            a.ctl("graceful", timeout=60)
            load.wait_requests(200)
        report("proxy-v2", load)
        assert load.failures == [], load.failures[:20]
        assert set(load.clients_seen) == {CLIENT_ADDR}  # from the PROXY header, not the peer
        assert load.servers_seen[a.port] > 0 and load.servers_seen[b.port] > 0


def test_a_clients_own_forwarded_headers_do_not_reach_the_scope(run_tmp: Path) -> None:
    """Through the recipe's HAProxy, a client claiming another address, https or another host
    (Forwarded, X-Forwarded-Proto, X-Forwarded-Host, a prepended X-Forwarded-For) is still
    itself, on plain http, with its own Host."""
    import http.client

    with start_stack(run_tmp, proxy_protocol=False) as stack:
        spoofs = [
            {"Forwarded": "for=6.6.6.6;proto=https;host=evil.example"},
            {"Forwarded": 'for="[2001:db8::6]";proto=https', "X-Forwarded-Proto": "https"},
            {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Host": "evil.example"},
        ]
        seen = []
        for headers in spoofs * 4:  # over a few connections, both instances
            conn = http.client.HTTPConnection(
                "127.0.0.1", stack.haproxy_port, timeout=10, source_address=(CLIENT_ADDR, 0)
            )
            try:
                conn.request("GET", "/client", headers={"Host": "shop.example", **headers})
                response = conn.getresponse()
                assert response.status == 200
                seen.append(json.loads(response.read()))
            finally:
                conn.close()
        print(f"\n[spoof] {len(seen)} requests, scopes seen: {sorted(map(str, seen))[:1]}")
        for answer in seen:
            assert answer["client"] == CLIENT_ADDR, answer
            assert answer["scheme"] == "http", answer
            assert answer["host"] == "shop.example", answer
