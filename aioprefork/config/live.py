"""Settings a running server changes without a restart: `aioprefork ctl set KEY VALUE`.

Pure. A value set this way is validated exactly as the config file's would be (the setting's
parser, then the cross-setting checks), one line naming key, value and source "ctl" when it is
refused. It stays on top of the other layers across graceful restarts, until the layers below it
change that setting themselves (the operator edited the file: the file wins again). Which of them
the workers must hear about is `WORKER_SIDE`; the rest only move the master's pool bounds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aioprefork.config.load import check_consistency, nearest
from aioprefork.config.model import BY_NAME, Config
from aioprefork.errors import ConfigError

CTL: Final = "ctl"
MASTER_SIDE: Final = frozenset({"min_workers", "max_workers", "min_spare_slots", "max_spare_slots"})
WORKER_SIDE: Final = frozenset(
    {"log_level", "access_log", "max_requests_per_worker", "request_timeout"}
)
LIVE: Final = MASTER_SIDE | WORKER_SIDE


@dataclass(frozen=True, slots=True)
class Override:
    """One `ctl set`: what was asked (as typed) and the value the layers below held then."""

    raw: str
    below: Any


def parse(key: str, raw: str) -> Any:
    """The value of `raw` for setting `key`; ConfigError (source "ctl") if it cannot be set live."""
    info = BY_NAME.get(key)
    if info is None:
        raise ConfigError(key, raw, CTL, "unknown setting" + nearest(key, BY_NAME))
    if key not in LIVE:
        raise ConfigError(
            key, raw, CTL,
            "not a live setting: change it in the config file and run `aioprefork ctl graceful` "
            f"(live: {', '.join(sorted(LIVE))})",
        )  # fmt: skip
    try:
        return info.parse(raw)
    except ValueError as exc:
        raise ConfigError(key, raw, CTL, str(exc)) from None


def apply(
    config: Config, sources: Mapping[str, str], overrides: Mapping[str, Override]
) -> tuple[Config, dict[str, str]]:
    """`config` with every override on top, checked as a whole; (config, sources). ConfigError."""
    if not overrides:
        return config, dict(sources)
    values = {key: parse(key, o.raw) for key, o in overrides.items()}
    merged = dataclasses.replace(config, **values)
    labelled = {**sources, **dict.fromkeys(values, CTL)}
    check_consistency(merged, labelled)
    return merged, labelled


def still_wanted(
    reloaded: Config, overrides: Mapping[str, Override]
) -> tuple[dict[str, Override], list[tuple[str, Any]]]:
    """After a reload: the overrides to keep, and (key, new value) of those the layers below
    changed since (the config file now decides them again)."""
    kept: dict[str, Override] = {}
    dropped: list[tuple[str, Any]] = []
    for key, override in overrides.items():
        now = getattr(reloaded, key)
        if now == override.below:
            kept[key] = override
        else:
            dropped.append((key, now))
    return kept, dropped
