"""aioprefork/logs.py: every logger the server writes to is named in LOGGERS and documented, and
the example log config in config/ works as shipped (JSON lines for both logs)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from aioprefork.logs import LOGGERS

ROOT = Path(__file__).resolve().parents[2]
GET_LOGGER = re.compile(r"""getLogger\(\s*["'](aioprefork[\w.]*)["']""")


def test_every_logger_in_the_code_is_listed_and_documented() -> None:
    used = {
        name
        for path in (ROOT / "aioprefork").rglob("*.py")
        for name in GET_LOGGER.findall(path.read_text(encoding="utf-8"))
    }
    assert used - {"aioprefork"} <= set(LOGGERS), sorted(used - set(LOGGERS))
    assert {"aioprefork.server", "aioprefork.access", "aioprefork.app"} <= used
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "config" / "logging.toml").read_text(encoding="utf-8")
    for name in LOGGERS:
        assert f"`{name}`" in readme, f"README does not document the logger {name}"
    for name in LOGGERS:
        assert re.search(rf"^#   {re.escape(name)} ", example, re.M), f"{name} not in the example"


def _serve_one_request(tmp_path: Path, headers: dict[str, str], *flags: str) -> tuple[str, str]:
    """`aioprefork serve examples.hello:app --workers 0 FLAGS`, one GET /?q=1 with `headers`,
    a graceful stop; (stdout, stderr)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        out, err = tmp_path / "stdout", tmp_path / "stderr"
        command = [
            sys.executable, "-m", "aioprefork", "serve", "examples.hello:app", "--workers", "0",
            "--no-metrics", *flags, "--bind", f"fd://{sock.fileno()}",
        ]  # fmt: skip
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            proc = subprocess.Popen(
                command, cwd=ROOT, stdout=stdout, stderr=stderr, pass_fds=[sock.fileno()]
            )
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/?q=1", headers=headers)
        for _ in range(100):
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    assert response.status == 200
                break
            except OSError:
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.read_text(), err.read_text()


def test_the_example_log_config_writes_json_lines(tmp_path: Path) -> None:
    example = str(ROOT / "config" / "logging.toml")
    out, err = _serve_one_request(
        tmp_path,
        {"X-Request-ID": "abc-123"},
        "--log-config",
        example,
        "--access-log-format",
        "json",
    )
    (access,) = [json.loads(line) for line in out.splitlines()]
    assert (access["path"], access["query"], access["status"], access["request_id"]) == (
        "/",
        "q=1",
        200,
        "abc-123",
    )
    errors = [json.loads(line) for line in err.splitlines()]
    assert errors and {e["logger"] for e in errors} == {"aioprefork.server"}
    assert any(e["message"].startswith("serving examples.hello:app on") for e in errors), errors


def test_access_log_headers_and_both_addresses_through_a_real_server(tmp_path: Path) -> None:
    # 127.0.0.1 is a trusted proxy by default: %a is the address it forwarded, %{c}a the proxy
    fmt = '%a %{c}a "%r" %>s "%{X-Request-ID}i" "%{traceparent}i" "%{content-type}o" "%{X-None}o"'
    headers = {
        "X-Forwarded-For": "203.0.113.7",
        "X-Request-ID": "req-1",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    out, _ = _serve_one_request(tmp_path, headers, "--access-log-format", fmt)
    assert out.splitlines() == [
        '203.0.113.7 127.0.0.1 "GET /?q=1 HTTP/1.1" 200 "req-1" '
        '"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" "text/plain; charset=utf-8" "-"'
    ]
