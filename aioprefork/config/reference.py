"""Generate config/reference.toml, the fully commented list of every setting, from the registry.

The checked-in file is this function's output (a drift test compares them), so a setting added to
config/model.py shows up in the reference without anyone writing it twice. Every assignment is
commented out as `#key = default`, so the file loads as "all defaults"; derived defaults (cpu
count, C/2...) are shown as `#key = <cpu count>` because their value depends on the machine.

Regenerate: `python -m aioprefork.config.reference > config/reference.toml`.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aioprefork.config.model import SETTINGS
from aioprefork.config.settings import SECTIONS, Kind, SettingInfo, render_value

HEADER: Final = """\
# aioprefork reference configuration: every setting, with its default.
#
# GENERATED from the settings registry (aioprefork/config/model.py) by
# `python -m aioprefork.config.reference`; do not edit by hand.
#
# Every setting can be given, highest precedence first, as
#   a command-line flag      aioprefork serve --graceful-timeout 10s
#   an environment variable  AIOPREFORK_GRACEFUL_TIMEOUT=10s
#   a key in this file       graceful_timeout = "10s"   (aioprefork serve --config FILE)
#   or left to its default.
# [section] headers are for reading only: a key means the same inside any table or at the top.
# Sizes take units ("64KiB", "1GiB", plain numbers are bytes); durations too ("500ms", "30s",
# "2m", plain numbers are seconds). Uncomment a line to change a value, then check the result
# with `aioprefork check-config --config FILE`.
"""


def toml_value(kind: Kind, value: Any) -> str:
    """A default written as TOML that the loader parses back to the same value."""
    if kind is Kind.BOOL:
        return "true" if value else "false"
    if kind is Kind.INT:
        return str(value)
    if kind is Kind.OCTAL:
        return f"0o{value:o}"
    if kind in (Kind.LIST, Kind.NETWORKS):
        return "[" + ", ".join(json.dumps(item) for item in value) + "]"
    if kind in (Kind.SIZE, Kind.DURATION):
        text = render_value(kind, value)
        return text if text.isdigit() else json.dumps(text)
    return json.dumps(str(value))


def render_setting(info: SettingInfo) -> str:
    spec = info.spec
    lines = [f"# {spec.help}."]
    where = [f"env {info.env}"]
    if spec.cli:
        flags = spec.flags or (info.flag,)
        if spec.kind is Kind.BOOL:
            flags = (f"{info.flag} / --no-{info.flag[2:]}",)
        where.append("flag " + ", ".join(flags))
    lines.append("#   " + "; ".join(where))
    if spec.choices:
        lines.append("#   one of: " + ", ".join(spec.choices))
    if spec.auto is not None:
        lines.append(f"#{info.name} = <{spec.auto_doc}>")
    else:
        lines.append(f"#{info.name} = {toml_value(spec.kind, info.default)}")
    return "\n".join(lines)


def render_reference_toml() -> str:
    parts = [HEADER]
    for section in SECTIONS:
        rows = [s for s in SETTINGS if s.spec.section == section]
        if not rows:
            continue
        parts.append(f"\n[{section}]\n")
        parts.append("\n\n".join(render_setting(s) for s in rows) + "\n")
    return "".join(parts)


if __name__ == "__main__":  # pragma: no cover - the regeneration command
    print(render_reference_toml(), end="")
