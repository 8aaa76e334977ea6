"""The settings registry: one declaration per key feeds the CLI, env vars, TOML, docs and check-config.

A setting is a field of the frozen `Config` dataclass (config/model.py) whose metadata holds a
`Spec`: section, help, value kind, CLI flags and an optional derived default ("auto"). Everything
that lists settings (typer options, `AIOPREFORK_<NAME>` env names, config/reference.toml, the docs
table) iterates `SETTINGS`, so a setting is written once (gunicorn's registry, not uvicorn's seven
copies).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aioprefork.config import units


class Kind(enum.Enum):
    """How a raw value (TOML, env string, CLI string) is parsed."""

    STR = "string"
    INT = "integer"
    SIZE = "size"
    DURATION = "duration"
    BOOL = "boolean"
    LIST = "list"
    NETWORKS = "networks"
    CHOICE = "choice"
    OCTAL = "octal"


def _octal(value: object) -> int:
    """Permissions: a string of octal digits ("660", "0o660"), or an int (a TOML 0o660) <= 0o777."""
    if isinstance(value, int) and not isinstance(value, bool):
        if 0 <= value <= 0o777:
            return value
        _fail('expected octal permissions (in TOML write 0o660, or "660")')
    text = str(value).strip()
    digits = text[2:] if text[:2].lower() == "0o" else text
    if not digits or any(c not in "01234567" for c in digits) or int(digits, 8) > 0o777:
        _fail("expected octal permissions such as 660 or 0o600")
    return int(digits, 8)


PARSERS: Final[Mapping[Kind, Callable[[object], Any]]] = {
    Kind.STR: lambda v: v if isinstance(v, str) else _fail("expected a string"),
    Kind.INT: units.parse_int,
    Kind.SIZE: units.parse_size,
    Kind.DURATION: units.parse_duration,
    Kind.BOOL: units.parse_bool,
    Kind.LIST: units.parse_list,
    Kind.NETWORKS: units.parse_networks,
    Kind.CHOICE: lambda v: str(v).strip().lower(),
    Kind.OCTAL: _octal,
}


SECTIONS: Final = (
    "app", "binding", "processes", "http", "timeouts", "proxies", "logging", "metrics", "tls",
    "hooks", "websocket", "http2",
)  # fmt: skip


def _fail(problem: str) -> Any:
    raise ValueError(problem)


@dataclass(frozen=True, slots=True)
class Spec:
    section: str
    help: str
    kind: Kind
    flags: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    auto: Callable[[Mapping[str, Any]], Any] | None = None
    auto_doc: str = ""
    cli: bool = True


def setting(
    default: Any,
    section: str,
    help: str,
    kind: Kind,
    *,
    flags: tuple[str, ...] = (),
    choices: tuple[str, ...] = (),
    minimum: float | None = None,
    auto: Callable[[Mapping[str, Any]], Any] | None = None,
    auto_doc: str = "",
    cli: bool = True,
) -> Any:
    """Declare one Config field; `auto` derives the default from the other values when unset."""
    spec = Spec(section, help, kind, flags, choices, minimum, auto, auto_doc, cli)
    return dataclasses.field(default=default, metadata={"spec": spec})


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """A registry row: the field name, its default and its Spec."""

    name: str
    default: Any
    spec: Spec

    @property
    def env(self) -> str:
        return f"AIOPREFORK_{self.name.upper()}"

    @property
    def flag(self) -> str:
        return self.spec.flags[0] if self.spec.flags else "--" + self.name.replace("_", "-")

    def parse(self, raw: object) -> Any:
        """Parse and range-check one raw value; ValueError carries a short problem phrase."""
        value = PARSERS[self.spec.kind](raw)
        if self.spec.choices and value not in self.spec.choices:
            raise ValueError("expected one of " + ", ".join(self.spec.choices))
        if self.spec.minimum is not None and value < self.spec.minimum:
            raise ValueError(f"must be at least {self.spec.minimum:g}")
        return value

    def default_doc(self) -> str:
        if self.spec.auto_doc:
            return self.spec.auto_doc
        return render_value(self.spec.kind, self.default)


def render_value(kind: Kind, value: Any) -> str:
    """The value as an operator would type it (used by check-config and the reference TOML)."""
    if kind is Kind.SIZE:
        return units.format_size(value)
    if kind is Kind.DURATION:
        return units.format_duration(value)
    if kind is Kind.BOOL:
        return "true" if value else "false"
    if kind in (Kind.LIST, Kind.NETWORKS):
        return ",".join(value)
    if kind is Kind.OCTAL:
        return oct(value)[2:].rjust(4, "0")
    return str(value)


def registry(config_cls: type) -> tuple[SettingInfo, ...]:
    rows = []
    for f in dataclasses.fields(config_cls):
        spec = f.metadata.get("spec")
        if isinstance(spec, Spec):
            rows.append(SettingInfo(f.name, f.default, spec))
    return tuple(rows)
