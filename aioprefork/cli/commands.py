"""The typer application: serve, check-config, version, and `ctl` (the control client).

cli/app.py's `main()` sends a plain `serve` command line straight to cli/serve.py and everything
else here, so only help, usage errors, check-config, version and ctl pay for importing typer.

Errors the user can cause print ONE line (`aioprefork: <what> — <fix>`) and exit non-zero; no
traceback reaches the terminal for them.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from aioprefork import __version__
from aioprefork.cli import serve as serving
from aioprefork.cli.argv import CONFIG_FLAGS
from aioprefork.cli.ctl import ctl_app
from aioprefork.cli.helptext import PlainHelpCommand
from aioprefork.cli.options import with_setting_options
from aioprefork.config.load import Loaded
from aioprefork.config.model import SETTINGS
from aioprefork.config.settings import render_value
from aioprefork.errors import EXIT_USAGE, UserError

app = typer.Typer(
    name="aioprefork",
    help="A prefork ASGI server: Apache's master/worker pool with uvloop + httptools workers.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

ConfigFile = Annotated[
    str | None,
    typer.Option(*CONFIG_FLAGS, help="TOML configuration file  [env: AIOPREFORK_CONFIG]"),
]
AppArg = Annotated[
    str | None,
    typer.Argument(
        metavar="APP", help="ASGI application as module:attribute (or `app` in the config file)"
    ),
]


def fail(message: str, code: int = EXIT_USAGE) -> None:
    typer.echo(f"aioprefork: {message}", err=True)
    raise typer.Exit(code)


def _load(app_path: str | None, config: str | None, kwargs: dict[str, Any]) -> Loaded:
    try:
        return serving.load_given(app_path, config, kwargs)[0]
    except UserError as exc:
        fail(str(exc))
        raise  # unreachable: fail() raises


@with_setting_options
def serve(app_path: AppArg = None, config: ConfigFile = None, **kwargs: Any) -> None:
    """Serve an ASGI application with a prefork worker pool (or in-process with --workers 0)."""
    raise typer.Exit(serving.serve(app_path, config, kwargs))


NoImport = Annotated[
    bool,
    typer.Option(
        "--no-import", help="do not import the app (by default it is imported in a child process)"
    ),
]


@with_setting_options
def check_config(
    app_path: AppArg = None, config: ConfigFile = None, no_import: NoImport = False, **kwargs: Any
) -> None:
    """Validate the configuration, import the app and print every effective value with its
    source (like apachectl -t): anything `serve` would refuse is refused here, in one line."""
    from aioprefork.cli import check

    loaded = _load(app_path, config, kwargs)
    for warning in loaded.warnings:
        typer.echo(f"aioprefork: warning: {warning}", err=True)
    cfg = loaded.config
    try:
        check.resolve_binds(cfg)
        if cfg.app and not no_import:
            check.import_app(cfg, cfg.boot_timeout)
    except UserError as exc:
        fail(str(exc))
    sources = dict(loaded.sources)
    running = check.live_settings(cfg)  # a server running this config, changed by `ctl set`
    if running:
        from aioprefork.config import live

        overrides = {k: live.Override(v, None) for k, v in running.items() if k in live.LIVE}
        try:
            cfg, sources = live.apply(cfg, sources, overrides)
        except UserError as exc:
            typer.echo(f"aioprefork: warning: the running server's ctl set: {exc}", err=True)
    width = max(len(s.name) for s in SETTINGS)
    for info in SETTINGS:
        value = render_value(info.spec.kind, getattr(cfg, info.name))
        shown = value if value else '""'
        typer.echo(f"{info.name:<{width}}  {shown:<28}  # {sources[info.name]}")
    for line in check.describe_pool(cfg):
        typer.echo(f"# {line}")
    typer.echo("Syntax OK", err=True)


def version() -> None:
    """Print the aioprefork version and the versions of its engine."""
    from importlib.metadata import version as dist_version

    from aioprefork.buildinfo import describe, hot_path_build

    typer.echo(
        f"aioprefork {__version__} (uvloop {dist_version('uvloop')}, "
        f"httptools {dist_version('httptools')}, Python {sys.version.split()[0]}); "
        f"hot path: {describe(hot_path_build())}"
    )


app.command("serve", no_args_is_help=False, cls=PlainHelpCommand)(serve)
app.command("check-config", cls=PlainHelpCommand)(check_config)
app.command("version")(version)

app.add_typer(
    ctl_app, name="ctl", help="Control a running server: status, graceful, stop, scale..."
)
