"""Where the master is, for `aioprefork ctl`: its control socket, its pid file, whether it lives.

The "Finding the master" options (--config, --pid-file, --ctl-socket, --bind/--host/--port) are
declared once here; `with_target` appends them to a command's own parameters, after them, so that
`aioprefork ctl graceful --ctl-socket X` parses (a callback on the `ctl` group would only accept
them before the sub-command), and hands the command one `target: Target` resolved from them the way
`serve` resolves its own (CLI > AIOPREFORK_* environment > config file > defaults).

Every failure ends the process through `fail`: the reason on ONE line, never a traceback.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, NoReturn

import typer

from aioprefork.config.load import load
from aioprefork.config.model import Config
from aioprefork.errors import EXIT_FAILURE, EXIT_USAGE, UserError
from aioprefork.master.daemon import alive, ctl_socket_path

EXIT_NOT_RUNNING: Final = EXIT_FAILURE  # 1, as `apachectl status` / LSB "program is not running"
EXIT_REFUSED: Final = EXIT_USAGE  # 2
PANEL: Final = "Finding the master"


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    typer.echo(f"aioprefork ctl: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


# --- the options (the same ones `serve` was given) -----------------------------------------------
def _option(
    name: str, flags: tuple[str, ...], help_text: str, *, many: bool = False
) -> inspect.Parameter:
    option = typer.Option(*flags, help=help_text, rich_help_panel=PANEL)
    annotation: Any = Annotated[list[str] | None, option] if many else Annotated[str | None, option]
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation
    )


FINDING_THE_MASTER: Final[tuple[inspect.Parameter, ...]] = (
    _option(
        "config",
        ("--config", "-c"),
        "TOML configuration file the server was started with (env AIOPREFORK_CONFIG)",
    ),
    _option("pid_file", ("--pid-file",), "the master's pid file (env AIOPREFORK_PID_FILE)"),
    _option(
        "ctl_socket",
        ("--ctl-socket",),
        "control socket path (default: <pid file>.ctl, else <runtime dir>/aioprefork-<port>.ctl)"
        " (env AIOPREFORK_CTL_SOCKET)",
    ),
    _option(
        "bind",
        ("--bind", "-b"),
        "the server's listen address (its first TCP port names the default socket)"
        " (env AIOPREFORK_BIND)",
        many=True,
    ),
    _option("host", ("--host",), "the server's --host (env AIOPREFORK_HOST)"),
    _option("port", ("--port", "-p"), "the server's --port (env AIOPREFORK_PORT)"),
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where the master should be: its control socket and pid file, and the config they came from."""

    socket_path: str
    pid_file: str
    config: Config


def locate(
    config: str | None,
    pid_file: str | None,
    ctl_socket: str | None,
    bind: list[str] | None,
    host: str | None,
    port: str | None,
) -> Target:
    given: dict[str, Any] = {"pid_file": pid_file, "ctl_socket": ctl_socket, "host": host}
    given["port"] = port
    if bind:
        given["bind"] = [part for item in bind for part in item.split(",") if part.strip()]
    try:
        cfg = load(given, config_file=config).config
    except UserError as exc:
        # ctl needs only where the server is: say how to name it without this configuration
        fail(f"{exc} (or name the server with --ctl-socket or --pid-file)")
    return Target(ctl_socket_path(cfg), cfg.pid_file, cfg)


def with_target(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` the "Finding the master" options after its own; it gets `target=` instead."""
    own = [
        p
        for p in inspect.signature(command, eval_str=True).parameters.values()
        if p.name != "target"
    ]
    params = [*own, *FINDING_THE_MASTER]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        where = {p.name: kwargs.pop(p.name) for p in FINDING_THE_MASTER}
        command(target=locate(**where), **kwargs)

    wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


# --- the pid file (apachectl -k) -----------------------------------------------------------------
def read_pid(path: str) -> int | None:
    try:
        text = open(path, encoding="ascii").read().strip()  # noqa: SIM115 - tiny file
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read pid file {path}: {getattr(exc, 'strerror', None) or exc}")
    if not text.isdigit() or int(text) <= 1:
        fail(f"pid file {path} does not hold a pid: {text[:20]!r}")
    return int(text)


def quiet_pid(target: Target) -> int | None:
    """The pid in the pid file, if there is a readable one (no complaints: only for waiting)."""
    try:
        text = open(target.pid_file, encoding="ascii").read().strip() if target.pid_file else ""  # noqa: SIM115
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() and int(text) > 1 else None


def not_running(target: Target, why: str) -> NoReturn:
    fail(
        f"not running (no control socket at {target.socket_path}; {why}); if it is running, "
        "tell ctl what serve was told: --port, --config or --pid-file (or --ctl-socket)",
        EXIT_NOT_RUNNING,
    )


def live_pid(target: Target) -> int:
    """The master's pid from the pid file, or exit 1 saying why there is none."""
    if not target.pid_file:
        not_running(target, "no pid file configured")
    pid = read_pid(target.pid_file)
    if pid is None:
        not_running(target, f"no pid file at {target.pid_file}")
    if not alive(pid):
        not_running(target, f"stale pid file {target.pid_file}: pid {pid} is gone")
    return pid
