"""Typer options generated from the settings registry, so no setting is written twice.

`with_setting_options(func)` gives `func` one keyword option per CLI-exposed setting, grouped by
section in --help, each showing its default and its AIOPREFORK_* environment name. Every option
defaults to None ("not given"), so config/load.py can apply CLI > env > file > defaults itself and
name the source of a bad value.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

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
    "websocket": "WebSocket",
}


def _option(info: SettingInfo) -> tuple[Any, Any]:
    """(annotation, default) for one setting's typer parameter."""
    help_text = f"{info.spec.help} (default: {info.default_doc() or 'none'}; env {info.env})"
    panel = PANELS[info.spec.section]
    if info.spec.kind is Kind.BOOL:
        flag = "--" + info.name.replace("_", "-")
        decls: tuple[str, ...] = (f"{flag}/--no-{flag[2:]}",)
        option = typer.Option(*decls, help=help_text, rich_help_panel=panel, show_default=False)
        return Annotated[bool | None, option], None
    decls = info.spec.flags or ("--" + info.name.replace("_", "-"),)
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


def cli_values(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The settings the user gave on the command line; lists joined into the comma form."""
    given: dict[str, Any] = {}
    for info in SETTINGS:
        value = kwargs.get(info.name)
        if value is None:
            continue
        if isinstance(value, list):
            value = [part for item in value for part in item.split(",") if part.strip()]
            if not value:
                continue
        given[info.name] = value
    return given
