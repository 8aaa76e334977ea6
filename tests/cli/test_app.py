"""The `aioprefork` entry point in a subprocess: check-config, precedence, --help content."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aioprefork.buildinfo import describe, hot_path_build
from aioprefork.cli.argv import option_flags
from aioprefork.config.model import SETTINGS

from .helpers import clean_env, run_cli

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
MASTER_APPS = Path(__file__).resolve().parents[1] / "master" / "apps"


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
        ("wokers = 4\n", ["wokers = 4", "unknown setting (did you mean workers?)"]),
        ("[processes]\nmax_wrokers = 4\n", ["unknown setting (did you mean max_workers?)"]),
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
        ("reload = true\nworkers = 0\n", ["reload = True", "use --workers 1"]),
        ('reload = true\nreload_dirs = ["/nonexistent"]\n', ["reload_dirs", "not a directory"]),
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


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--bind", "0.0.0.0:80:80"], ["bind = '0.0.0.0:80:80' (from cli)", "HOST:PORT"]),
        (["--bind", "aiopf-no-such-host.invalid:80"], ["aiopf-no-such-host.invalid:80", "unknown host"]),
        (["--metrics-bind", "aiopf-no-such-host.invalid:9464"], ["aiopf-no-such-host.invalid:9464", "unknown host"]),
        (["aiopf_mian:app"], ["cannot import app module 'aiopf_mian'", "check the name or --app-dir"]),
        (["broken_app:app", "--app-dir", str(MASTER_APPS)], ["No module named 'this_module_does_not_exist'", "broken_app.py:5)"]),
        (["needs_env:app", "--app-dir", str(MASTER_APPS)], ["KeyError: 'AIOPF_TEST_DATABASE_URL' (at ", "needs_env_settings.py:7)"]),
    ],
    ids=["bind with two ports", "unknown host", "unknown metrics host", "misspelt module", "missing dependency", "error two modules deep"],
)  # fmt: skip
def test_check_config_refuses_what_serve_would_refuse(flags: list[str], words: list[str]) -> None:
    """It said "Syntax OK" for these; serve then failed. The app is imported in a child process."""
    r = run_cli("check-config", *flags)
    assert r.code == 2, r.out + r.err
    line = r.one_line_error
    for word in words:
        assert word in line, line


def test_check_config_no_import_skips_the_app(sock_dir: Path) -> None:
    r = run_cli("check-config", "aiopf_mian:app", "--no-import")
    assert r.code == 0, r.err
    assert r.err.strip() == "Syntax OK"
    assert effective(r.out)["app"] == ("aiopf_mian:app", "cli")


def test_check_config_imports_a_good_app_in_a_child_process() -> None:
    """The import runs elsewhere: a module that prints at import does not reach our output."""
    r = run_cli("check-config", "prefork_apps:app", "--app-dir", str(MASTER_APPS))
    assert r.code == 0, r.err
    assert r.err.strip() == "Syntax OK"


def test_check_config_explains_the_pool_and_how_to_get_the_spare_pool() -> None:
    r = run_cli("check-config", "--workers", "4", "--max-workers", "8")
    assert r.code == 0, r.err
    notes = [line for line in r.out.splitlines() if line.startswith("# pool:")]
    assert notes[0].startswith("# pool: 4 workers always (min_workers = 4)")
    assert "up to max_workers = 8" in notes[0]
    assert "set min_workers below workers (e.g. --min-workers 1)" in notes[1]
    r = run_cli("check-config", "--workers", "4", "--min-workers", "1", "--max-workers", "8")
    (note,) = [line for line in r.out.splitlines() if line.startswith("# pool:")]
    assert "Apache's spare pool" in note and "never below 1" in note


def test_a_config_file_from_the_environment_is_labelled_so(sock_dir: Path) -> None:
    """The error said "(from --config)" when the path came from AIOPREFORK_CONFIG."""
    absent = sock_dir / "absent.toml"
    r = run_cli("check-config", env=clean_env(AIOPREFORK_CONFIG=str(absent)))
    assert r.code == 2
    assert r.one_line_error == (
        f"aioprefork: config error: config = '{absent}' (from env AIOPREFORK_CONFIG): "
        "file not found"
    )
    r = run_cli("check-config", "--config", str(absent))
    assert "(from --config)" in r.one_line_error


def test_unknown_environment_variables_warn_with_the_nearest_name() -> None:
    env = clean_env(
        AIOPREFORK_WOKERS="8",
        AIOPREFORK_MYPYC="1",  # the build's, not settings: never warned about
        AIOPREFORK_EXPECT_COMPILED="1",
    )
    r = run_cli("check-config", "--no-import", env=env)
    assert r.code == 0, r.err
    assert r.err.splitlines() == [
        "aioprefork: warning: AIOPREFORK_WOKERS is not a setting and is ignored"
        " (did you mean AIOPREFORK_WORKERS?)",
        "Syntax OK",
    ]
    r = run_cli("serve", env=env)  # serve says it too, before anything else
    assert r.code == 2
    assert r.err.splitlines()[0] == (
        "aioprefork: warning: AIOPREFORK_WOKERS is not a setting and is ignored"
        " (did you mean AIOPREFORK_WORKERS?)"
    )
    assert "AIOPREFORK_MYPYC" not in r.err and "EXPECT_COMPILED" not in r.err


def test_a_misspelt_flag_names_the_right_one() -> None:
    r = run_cli("serve", "examples.hello:app", "--wokers", "4")
    assert r.code == 2
    assert "No such option: --wokers" in r.err and "--workers" in r.err


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


@pytest.mark.parametrize("command", ["serve", "check-config"])
def test_help_is_whole_in_an_80_column_terminal(command: str) -> None:
    """rich's tables cut defaults and AIOPREFORK_* names with an ellipsis at 80 columns."""
    r = run_cli(command, "--help", env=clean_env(COLUMNS="80"))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert not [line for line in lines if len(line) > 80]
    assert "\u2026" not in r.out  # the ellipsis of a cut cell
    text = " ".join(r.out.split())
    for info in SETTINGS:
        if not info.spec.cli:
            continue
        assert f"(default: {info.default_doc() or 'none'}; env {info.env})" in text, info.name
        assert f"  {option_flags(info)[0].partition('/')[0]}" in r.out, info.name
    for panel in ("Application:", "Binding:", "Processes:", "Logging:", "Metrics:", "TLS:"):
        assert panel in lines, panel


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
