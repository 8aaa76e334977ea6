"""Pure parsers for the value syntaxes operators type: sizes, durations, booleans, address lists.

Each parser takes the raw value (a TOML value or a CLI/env string) and returns the typed value or
raises ValueError with a short phrase; config/load.py turns that into a ConfigError naming the key.
The format_* functions go the other way, for the text operators read (settings, status views).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

_SIZE_UNITS: Final = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "kib": 1024,
    "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    "t": 1000**4, "tb": 1000**4, "tib": 1024**4,
}  # fmt: skip
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_NUMBER_UNIT: Final = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def parse_size(value: object) -> int:
    """'64KiB' -> 65536; plain integers are bytes. Binary and decimal units are both accepted."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 1048576, '64KiB' or '1GiB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        return value
    match = _NUMBER_UNIT.match(str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ValueError("expected a size such as 1048576, '64KiB' or '1GiB'")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_duration(value: object) -> float:
    """'30s' -> 30.0, '500ms' -> 0.5, '2m' -> 120.0; plain numbers are seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30, '30s', '500ms' or '2m'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("must not be negative")
        return float(value)
    match = _NUMBER_UNIT.match(str(value))
    if not match or match.group(2).lower() not in _DURATION_UNITS:
        raise ValueError("expected a duration such as 30, '30s', '500ms' or '2m'")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]


def parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_int(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip(), 0)
    except ValueError:
        raise ValueError("expected an integer") from None


def parse_list(value: object) -> tuple[str, ...]:
    """A TOML array, or a comma-separated string (the env and CLI form)."""
    if isinstance(value, list | tuple):
        items = [str(v).strip() for v in value]
    else:
        items = [part.strip() for part in str(value).split(",")]
    return tuple(item for item in items if item)


def parse_networks(value: object) -> tuple[str, ...]:
    """IPs and CIDRs for forwarded_allow_ips; '*' trusts every peer, 'unix' trusts Unix sockets."""
    items = parse_list(value)
    for item in items:
        if item in ("*", "unix"):
            continue
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return items


def format_size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def format_duration(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{round(seconds * 1000)}ms"
    return f"{seconds:g}s"


def format_age(seconds: float) -> str:
    """Whole seconds in their two largest units, as `top` and `ps` show an age: 42s, 12m05s, 3h07m,
    2d04h (a negative age counts as 0). One form for `ctl status` and /server-status."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
