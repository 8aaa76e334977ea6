"""cli/argv.py reads a plain `serve` command line exactly as typer would, and declines the rest.

typer is the oracle: each accepted command line is also parsed by a typer command declared the
way cli/commands.py declares `serve` (same APP argument, --config option and generated setting
options), and both must hand over the same app, config file and options.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.main import get_command

from aioprefork.cli.argv import OPTIONS, ServeArgs, cli_values, parse_serve
from aioprefork.cli.commands import AppArg, ConfigFile
from aioprefork.cli.options import with_setting_options

BENCH = [
    "serve", "examples.hello:app", "--host", "127.0.0.1", "--port", "8000", "--workers", "1",
    "--no-access-log", "--log-level", "warning", "--min-workers", "1", "--max-workers", "1",
    "--metrics-bind", "127.0.0.1:9100", "--ctl-socket", "/tmp/x.ctl",
]  # fmt: skip

ACCEPTED = [
    ["serve"],
    ["serve", "m:app"],
    BENCH,
    ["serve", "--bind", "127.0.0.1:1", "-b", "unix:/tmp/s", "m:app", "--bind=[::1]:2,fd://3"],
    ["serve", "-c", "a.toml", "m:app"],
    ["serve", "m:app", "--config=b.toml", "--config", "c.toml"],
    ["serve", "m:app", "-w", "2", "--workers", "3"],
    ["serve", "m:app", "--access-log", "--no-access-log", "--daemon"],
    ["serve", "m:app", "--graceful-timeout=-1", "--log-config="],
    ["serve", "", "--log-config", ""],
    ["serve", "--forwarded-allow-ips", "10.0.0.0/8", "--forwarded-allow-ips", "*", "m:app"],
    ["serve", "m:app", "-p", "0", "--port=1"],
]
DECLINED = [
    [],
    ["--help"],
    ["check-config", "m:app"],
    ["ctl", "status"],
    ["serve", "--help"],
    ["serve", "m:app", "--help"],
    ["serve", "m:app", "--wrokers", "2"],
    ["serve", "m:app", "--workers"],
    ["serve", "m:app", "--workers", "-1"],
    ["serve", "m:app", "--log-config", "--help"],
    ["serve", "m:app", "-w4"],
    ["serve", "m:app", "-w=4"],
    ["serve", "m:app", "-h"],
    ["serve", "m:app", "--daemon=yes"],
    ["serve", "m:app", "--no-daemon=1"],
    ["serve", "a:app", "b:app"],
    ["serve", "--", "m:app"],
    ["serve", "-"],
    ["Serve", "m:app"],
]


def typer_reads(argv: list[str]) -> ServeArgs:
    """What typer hands a command declared like `serve` for `aioprefork ARGV`."""
    seen: list[ServeArgs] = []

    @with_setting_options
    def serve(app_path: AppArg = None, config: ConfigFile = None, **kwargs: Any) -> None:
        given = {name: value for name, value in kwargs.items() if value is not None}
        seen.append(ServeArgs(app=app_path, config=config, options=given))

    app = typer.Typer(add_completion=False)
    app.command("serve")(serve)
    app.command("other")(lambda: None)  # two commands: typer builds a group, as the real app
    get_command(app).main(args=argv, prog_name="aioprefork", standalone_mode=False)
    assert len(seen) == 1
    return seen[0]


def every_option() -> list[str]:
    """`serve` with every setting option of the table given once, in table order."""
    argv = ["serve", "m:app"]
    for flag, option in OPTIONS.items():
        argv += [flag, f"v{len(argv)}"] if option.takes_value else [flag]
    return argv


@pytest.mark.parametrize("argv", [*ACCEPTED, every_option()], ids=" ".join)
def test_a_plain_command_line_reads_as_typer_reads_it(argv: list[str]) -> None:
    ours = parse_serve(argv, {})
    assert ours is not None
    theirs = typer_reads(argv)
    assert ours == theirs
    assert cli_values(ours.options) == cli_values(theirs.options)


@pytest.mark.parametrize("argv", DECLINED, ids=" ".join)
def test_anything_else_is_left_to_typer(argv: list[str]) -> None:
    assert parse_serve(argv, {}) is None


def test_shell_completion_is_left_to_typer() -> None:
    assert parse_serve(["serve", "m:app"], {"_AIOPREFORK_COMPLETE": "bash_complete"}) is None


def test_the_table_names_every_cli_setting_and_only_those() -> None:
    from aioprefork.config.model import SETTINGS

    named = {option.name for option in OPTIONS.values()}
    assert named == {s.name for s in SETTINGS if s.spec.cli} | {"config"}
