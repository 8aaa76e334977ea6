"""Typer options generated from the settings registry, so no setting is written twice.

`with_setting_options(func)` gives `func` one keyword option per CLI-exposed setting, grouped by
section in --help, each showing its default and its AIOPREFORK_* environment name. Every option
defaults to None ("not given"), so config/load.py can apply CLI > env > file > defaults itself and
name the source of a bad value. The flag names come from cli/argv.py (`option_flags`), which reads
a plain `serve` command line without typer by the same names.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

from aioprefork.cli.argv import option_flags
from aioprefork.config.model import SETTINGS
from aioprefork.config.settings import Kind, SettingInfo

METAVARS = {
    Kind.STR: "TEXT",
    Kind.INT: "N",
    Kind.SIZE: "SIZE",
    Kind.DURATION: "DURATION",
    Kind.LIST: "ADDRESS",
    Kind.NETWORKS: "CIDRS",
    Kind.CHOICE: "CHOICE",
    Kind.OCTAL: "MODE",
    Kind.BOOL: "",
}

PANELS = {
    "app": "Application",
    "binding": "Binding",
    "processes": "Processes",
    "http": "HTTP limits",
    "timeouts": "Timeouts",
    "proxies": "Proxies",
    "logging": "Logging",
    "metrics": "Metrics",
    "tls": "TLS",
    "hooks": "Hooks",
    "websocket": "WebSocket",
    "http2": "HTTP/2",
}


def _option(info: SettingInfo) -> tuple[Any, Any]:
    """(annotation, default) for one setting's typer parameter."""
    help_text = f"{info.spec.help} (default: {info.default_doc() or 'none'}; env {info.env})"
    panel = PANELS[info.spec.section]
    decls = option_flags(info)  # cli/argv.py reads `serve` without typer by the same names
    if info.spec.kind is Kind.BOOL:
        option = typer.Option(*decls, help=help_text, rich_help_panel=panel, show_default=False)
        return Annotated[bool | None, option], None
    option = typer.Option(
        *decls,
        help=help_text,
        rich_help_panel=panel,
        show_default=False,
        metavar=METAVARS[info.spec.kind],
    )
    if info.spec.kind in (Kind.LIST, Kind.NETWORKS):
        return Annotated[list[str] | None, option], None
    return Annotated[str | None, option], None


def setting_parameters() -> list[inspect.Parameter]:
    params = []
    for info in SETTINGS:
        if not info.spec.cli:
            continue
        annotation, default = _option(info)
        params.append(
            inspect.Parameter(
                info.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
            )
        )
    return params


def with_setting_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Append the generated setting options to `func`'s own parameters (which come first)."""
    own = [
        p
        for p in inspect.signature(func, eval_str=True).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    ]
    params = own + setting_parameters()
    func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    func.__annotations__ = {p.name: p.annotation for p in params}
    return func
