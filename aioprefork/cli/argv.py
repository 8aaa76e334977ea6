"""`aioprefork serve ...` read without typer, so the master (which forks every worker) never loads it.

Why: the process that parses the command line IS the master, and every page it holds when it
forks is in every worker's RSS. typer costs ~3 MiB there, and since typer 0.2x it also builds a
pydantic TypeAdapter for every one of serve's ~60 options when it parses them: ~9 MiB per worker
in all (measured with bench/procs.py: worker RSS 35.8 -> 27.2 MiB, uvicorn's 31.2).

Contract: `parse_serve(argv, environ)` returns what typer would have handed the `serve` command
(the app, the --config file, and the options given), or None for anything but the plain form:
--help, an unknown option, an option without its value, a value that starts with "-", a short
option with its value attached, a bool flag given a value, a second positional, `--`, a shell
completion request. None means "let typer do it", so help, usage errors and completion keep
typer's exact words; this module never prints. The option names come from the same helpers the
typer options are declared with (`option_flags`, CONFIG_FLAGS), so the two cannot disagree on a
name; tests/cli/test_argv.py checks the values agree too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from aioprefork.config.model import SETTINGS
from aioprefork.config.settings import Kind, SettingInfo

CONFIG_FLAGS: Final = ("--config", "-c")
CONFIG: Final = "config"  # the name `--config` is collected under (not a setting)
MANY: Final = frozenset({Kind.LIST, Kind.NETWORKS})  # repeatable options, collected as a list


def option_flags(info: SettingInfo) -> tuple[str, ...]:
    """The CLI spelling of a setting: `--name/--no-name` for a bool, else its flags or `--name`."""
    flag = "--" + info.name.replace("_", "-")
    if info.spec.kind is Kind.BOOL:
        return (f"{flag}/--no-{flag[2:]}",)
    return info.spec.flags or (flag,)


@dataclass(frozen=True, slots=True)
class ServeArgs:
    app: str | None
    config: str | None
    options: dict[str, Any]  # setting -> str | bool | list[str], only the ones given


@dataclass(frozen=True, slots=True)
class _Option:
    name: str
    takes_value: bool
    many: bool = False
    flag_value: bool = True


def _table() -> dict[str, _Option]:
    table = {flag: _Option(CONFIG, takes_value=True) for flag in CONFIG_FLAGS}
    for info in SETTINGS:
        if not info.spec.cli:
            continue
        if info.spec.kind is Kind.BOOL:
            on, _, off = option_flags(info)[0].partition("/")
            table[on] = _Option(info.name, takes_value=False, flag_value=True)
            table[off] = _Option(info.name, takes_value=False, flag_value=False)
        else:
            for flag in option_flags(info):
                table[flag] = _Option(info.name, takes_value=True, many=info.spec.kind in MANY)
    return table


OPTIONS: Final = _table()


def parse_serve(argv: Sequence[str], environ: Mapping[str, str]) -> ServeArgs | None:
    """`serve` and its arguments -> ServeArgs; None for anything typer must handle (see above)."""
    if not argv or argv[0] != "serve" or _completing(environ):
        return None
    app: str | None = None
    values: dict[str, Any] = {}
    rest = list(argv[1:])
    while rest:
        token = rest.pop(0)
        if not token.startswith("-"):
            if app is not None:
                return None  # typer: "Got unexpected extra argument"
            app = token
            continue
        flag, equals, attached = token.partition("=")
        option = OPTIONS.get(flag)
        if option is None or (equals and (not flag.startswith("--") or not option.takes_value)):
            return None  # --help, `--`, unknown, -x=..., -xVALUE, --flag=value
        if not option.takes_value:
            values[option.name] = option.flag_value
            continue
        if equals:
            value = attached
        elif rest and not rest[0].startswith("-"):
            value = rest.pop(0)
        else:
            return None  # no value, or one click would take but a reader could misread
        if option.many:
            values.setdefault(option.name, []).append(value)
        else:
            values[option.name] = value  # click: the last one wins
    config = values.pop(CONFIG, None)
    return ServeArgs(app=app, config=config, options=values)


def _completing(environ: Mapping[str, str]) -> bool:
    """typer's shell completion runs through `_<PROG>_COMPLETE` in the environment."""
    return any(name.startswith("_") and name.endswith("_COMPLETE") for name in environ)


def cli_values(kwargs: Mapping[str, Any]) -> dict[str, Any]:
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
