"""The `aioprefork` entry point in a subprocess: check-config, precedence, --help content."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aioprefork.buildinfo import describe, hot_path_build

from .helpers import clean_env, run_cli

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def effective(out: str) -> dict[str, tuple[str, str]]:
    """check-config's table: key -> (value, source)."""
    rows = {}
    for line in out.splitlines():
        match = re.match(r"^(\w+)\s+(.*?)\s+# (.*)$", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


@pytest.mark.parametrize("name", ["production.toml", "development.toml", "reference.toml"])
def test_check_config_accepts_the_example_files(name: str) -> None:
    r = run_cli("check-config", "--config", str(CONFIG_DIR / name))
    assert r.code == 0, r.err
    assert r.err.strip() == "Syntax OK"
    rows = effective(r.out)
    assert len(rows) > 50
    if name == "production.toml":
        assert rows["bind"] == ("0.0.0.0:8000", f"file {CONFIG_DIR / name}")
        assert rows["keepalive_timeout"] == ("65s", f"file {CONFIG_DIR / name}")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("wrokers = 4\n", ["wrokers = 4", "unknown setting"]),
        ('workers = "many"\n', ["workers = 'many'", "expected an integer"]),
        ("min_workers = 0\n", ["min_workers = 0", "at least 1"]),
        ('graceful_timeout = "soon"\n', ["graceful_timeout = 'soon'", "duration"]),
        ("workers = 9\nmax_workers = 2\n", ["workers = 9", "max_workers"]),
        ("workers = [1\n", ["not valid TOML"]),
        ("workers = 2\n# caf\xe9\n", ["not UTF-8", "save it as UTF-8"]),  # a Latin-1 file
        ('access_log_format = "%Q"\n', ["access_log_format = '%Q'", "unknown directive %Q"]),
        ('access_log_format = "%{"\n', ["access_log_format = '%{'", "incomplete directive"]),
        ("port = 70000\n", ["port = 70000", "0-65535"]),
        ("unix_socket_mode = 999\n", ["unix_socket_mode", "expected octal permissions"]),
        ('app = "examples.hello"\n', ["app = 'examples.hello'", "module:attribute"]),
        ('max_worker_memory = "10"\n', ["max_worker_memory = 10", "below 32MiB"]),
        ('metrics_bind = "nonsense"\n', ["metrics_bind = 'nonsense'", "HOST:PORT"]),
        ('log_config = "/nonexistent/log.json"\n', ["log_config", "file not found"]),
        ('pid_file = "/nonexistent/x.pid"\n', ["pid_file", "does not exist"]),
        ('bind = ["unix:/nonexistent/x.sock"]\n', ["bind", "does not exist"]),
        ('user = "no-such-user-here"\n', ["user = 'no-such-user-here'", "no such account"]),
        ('ssl_certfile = "/nonexistent/cert.pem"\n', ["ssl_certfile", "No such file"]),
    ],
)
def test_check_config_rejects_bad_files_in_one_line(
    sock_dir: Path, body: str, words: list[str]
) -> None:
    conf = sock_dir / "bad.toml"
    conf.write_bytes(body.encode("latin-1"))
    r = run_cli("check-config", "--config", str(conf))
    assert r.code == 2
    line = r.one_line_error
    assert str(conf) in line or "--config" in line
    for word in words:
        assert word in line


def test_check_config_on_a_missing_file(sock_dir: Path) -> None:
    r = run_cli("check-config", "--config", str(sock_dir / "absent.toml"))
    assert r.code == 2
    assert "file not found" in r.one_line_error


def test_precedence_cli_over_env_over_file_over_defaults(sock_dir: Path) -> None:
    conf = sock_dir / "layers.toml"
    conf.write_text(
        'graceful_timeout = "10s"\nkeepalive_timeout = "7s"\nheader_timeout = "3s"\n'
        "max_keepalive_requests = 50\n"
    )
    env = clean_env(
        AIOPREFORK_KEEPALIVE_TIMEOUT="8s",
        AIOPREFORK_HEADER_TIMEOUT="4s",
        AIOPREFORK_LOG_LEVEL="warning",
    )
    r = run_cli(
        "check-config", "--config", str(conf), "--header-timeout", "5s", "--log-level", "error",
        env=env,
    )  # fmt: skip
    assert r.code == 0, r.err
    rows = effective(r.out)
    assert rows["graceful_timeout"] == ("10s", f"file {conf}")
    assert rows["max_keepalive_requests"] == ("50", f"file {conf}")
    assert rows["keepalive_timeout"] == ("8s", "env AIOPREFORK_KEEPALIVE_TIMEOUT")
    assert rows["header_timeout"] == ("5s", "cli")
    assert rows["log_level"] == ("error", "cli")
    assert rows["body_timeout"] == ("60s", "default")


def test_the_config_file_may_come_from_the_environment(sock_dir: Path) -> None:
    conf = sock_dir / "env.toml"
    conf.write_text("backlog = 77\n")
    r = run_cli("check-config", env=clean_env(AIOPREFORK_CONFIG=str(conf)))
    assert r.code == 0, r.err
    assert effective(r.out)["backlog"] == ("77", f"file {conf}")


def test_a_bad_environment_value_names_its_variable() -> None:
    r = run_cli("check-config", env=clean_env(AIOPREFORK_BACKLOG="lots"))
    assert r.code == 2
    assert r.one_line_error == (
        "aioprefork: config error: backlog = 'lots' (from env AIOPREFORK_BACKLOG): "
        "expected an integer"
    )


def test_serve_help_groups_options_with_defaults_and_env_names() -> None:
    r = run_cli("serve", "--help")
    assert r.code == 0, r.err
    for panel in (
        "Binding",
        "Processes",
        "HTTP limits",
        "Timeouts",
        "Proxies",
        "Logging",
        "Metrics",
    ):
        assert panel in r.out, panel
    for flag in ("--bind", "--workers", "--graceful-timeout", "--forwarded-allow-ips", "--config"):
        assert flag in r.out, flag
    assert "AIOPREFORK_GRACEFUL_TIMEOUT" in r.out
    assert "default: 30s" in r.out
    assert "default: cpu count" in r.out


def test_top_level_help_lists_the_commands() -> None:
    r = run_cli("--help")
    assert r.code == 0, r.err
    for command in ("serve", "check-config", "version", "ctl"):
        assert command in r.out


def test_ctl_help_lists_every_command_and_how_to_find_the_master() -> None:
    r = run_cli("ctl", "--help")
    assert r.code == 0, r.err
    for command in (
        "status",
        "graceful",
        "restart",
        "stop",
        "graceful-stop",
        "scale",
        "reopen-logs",
    ):
        assert command in r.out, command
    r = run_cli("ctl", "stop", "--help")
    for text in ("--now", "--timeout", "--config", "--pid-file", "--ctl-socket", "--port",
                 "Finding the master", "AIOPREFORK_CTL_SOCKET"):  # fmt: skip
        assert text in r.out, text
    r = run_cli("ctl", "status", "--help")
    for text in ("--json", "--watch", "SECONDS", "--count"):
        assert text in r.out, text


def test_version() -> None:
    r = run_cli("version")
    assert r.code == 0
    assert r.out.startswith("aioprefork ")
    # which build serves: the editable install is pure, `make compiled`'s tree compiled
    assert f"; hot path: {describe(hot_path_build())}\n" in r.out
