"""Build the effective Config: defaults < TOML file < AIOPREFORK_* environment < CLI flags.

`load()` returns the frozen Config and, for each key, the source its value came from, so that
`check-config` can print it and every ConfigError can name it. It is called at start and again on
every restart/graceful restart; a failure on reload leaves the running config in place.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aioprefork.config.model import BY_NAME, SETTINGS, Config
from aioprefork.errors import ConfigError

DEFAULT = "default"
AUTO = "auto"
ENV = "env"
CLI = "cli"
CONFIG_ENV: Final = "AIOPREFORK_CONFIG"  # the config file's path from the environment


# AIOPREFORK_* variables that are not settings but are read on purpose: the config file's path,
# the build's (setup.py, the Makefile) and the test suites' (AIOPREFORK_TEST_*).
NOT_SETTINGS: Final = frozenset(
    {CONFIG_ENV, "AIOPREFORK_MYPYC", "AIOPREFORK_EXPECT_COMPILED", "AIOPREFORK_DEPLOY_CACHE"}
)


@dataclass(frozen=True, slots=True)
class Loaded:
    config: Config
    sources: Mapping[str, str]  # key -> "default" | "auto" | "file PATH" | "env NAME" | "cli"
    config_file: str | None
    warnings: tuple[str, ...] = ()  # said once at start (serve, check-config); never fatal


def nearest(name: str, candidates: Iterable[str]) -> str:
    """' (did you mean X?)' for the closest candidate to a misspelt name, else ''."""
    import difflib

    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def unknown_variables(env: Mapping[str, str]) -> tuple[str, ...]:
    """One warning per AIOPREFORK_* variable that no setting reads: a typo silently ignored is
    the worst kind (AIOPREFORK_WOKERS=8 and a server that runs the default)."""
    names = {s.env for s in SETTINGS}
    return tuple(
        f"{var} is not a setting and is ignored{nearest(var, names)}"
        for var in sorted(env)
        if var.startswith("AIOPREFORK_")
        and var not in names
        and var not in NOT_SETTINGS
        and not var.startswith("AIOPREFORK_TEST_")
    )


def read_toml(path: str, source: str = "--config") -> dict[str, Any]:
    """The TOML file, flattened: top-level keys and keys inside [section] tables are equivalent.
    `source` says where the path came from (--config, or env AIOPREFORK_CONFIG)."""
    import tomllib  # here, not at the top: the master (and so every worker) needs it only for this

    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config", path, source, "file not found") from None
    except OSError as exc:
        raise ConfigError("config", path, source, exc.strerror or str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("config", path, source, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            "config", path, source, f"not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                flat[sub.replace("-", "_")] = subvalue
        else:
            flat[key.replace("-", "_")] = value
    return flat


def load(
    cli: Mapping[str, Any] | None = None,
    *,
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Loaded:
    """Merge the layers; `cli` holds only the flags the user actually gave (None = not given)."""
    import os

    env = os.environ if env is None else env
    layers: list[tuple[str, Mapping[str, Any]]] = []
    path_source = "--config"
    if config_file is None:
        config_file = env.get(CONFIG_ENV) or None
        path_source = f"env {CONFIG_ENV}"
    if config_file:
        file_values = read_toml(config_file, path_source)
        for key, value in file_values.items():
            if key not in BY_NAME:
                raise ConfigError(
                    key, value, f"file {config_file}", "unknown setting" + nearest(key, BY_NAME)
                )
        layers.append((f"file {config_file}", file_values))
    env_values = {s.name: env[s.env] for s in SETTINGS if s.env in env}
    for name in env_values:
        layers.append((f"env {BY_NAME[name].env}", {name: env_values[name]}))
    if cli:
        given = {k: v for k, v in cli.items() if v is not None}
        for key in given:
            if key not in BY_NAME:
                raise ConfigError(key, given[key], CLI, "unknown setting" + nearest(key, BY_NAME))
        layers.append((CLI, given))

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for key, raw in layer.items():
            info = BY_NAME[key]
            try:
                values[key] = info.parse(raw)
            except ValueError as exc:
                raise ConfigError(key, raw, source, str(exc)) from None
            sources[key] = source
    for info in SETTINGS:  # derived defaults, in declaration order (later ones may use earlier)
        if info.name in values:
            continue
        if info.spec.auto is not None:
            values[info.name] = info.spec.auto({**_defaults(), **values})
            sources[info.name] = AUTO
        else:
            values[info.name] = info.default
            sources[info.name] = DEFAULT
    config = Config(**values)
    check_consistency(config, sources)
    return Loaded(config, sources, config_file, unknown_variables(env))


def _defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SETTINGS}


_MIN_WORKER_MEMORY: Final = 32 * 1024 * 1024


def check_consistency(c: Config, sources: Mapping[str, str]) -> None:
    """Cross-key rules (Apache clamps these with a warning; we refuse, so surprises show at start)."""

    def bad(key: str, problem: str) -> ConfigError:
        return ConfigError(key, getattr(c, key), sources.get(key, DEFAULT), problem)

    if c.workers > c.max_workers:  # first: min_workers follows workers unless set
        raise bad("workers", f"must not exceed max_workers ({c.max_workers})")
    if c.min_workers > c.max_workers:
        raise bad("min_workers", f"must not exceed max_workers ({c.max_workers})")
    if c.max_workers > c.server_limit:
        raise bad("max_workers", f"must not exceed server_limit ({c.server_limit})")
    if c.max_spare_slots < c.min_spare_slots + c.worker_connections + 1:
        need = c.min_spare_slots + c.worker_connections + 1
        raise bad(
            "max_spare_slots", f"must be at least min_spare_slots + worker_connections + 1 = {need}"
        )
    if 0 < c.max_worker_memory < _MIN_WORKER_MEMORY:
        raise bad(
            "max_worker_memory",
            "below 32MiB every worker is recycled as it starts (one serving hello-world holds"
            " ~25MiB); give a size such as 512MiB, or 0 for off",
        )
    if c.ssl_keyfile and not c.ssl_certfile:
        raise bad("ssl_keyfile", "needs ssl_certfile too")
    if c.ssl_cert_reqs != "none" and not c.ssl_ca_certs:
        raise bad("ssl_cert_reqs", "needs ssl_ca_certs to verify client certificates")
    if not c.bind and not 0 <= c.port <= 65535:
        raise bad("port", "must be a TCP port, 0-65535")
    for address in c.binds():
        if not _valid_bind(address):
            raise ConfigError(
                "bind",
                address,
                sources.get("bind", DEFAULT),
                "expected HOST:PORT (port 0-65535), [IPv6]:PORT, unix:PATH or fd://N",
            )


def _valid_bind(address: str) -> bool:
    if address.startswith("unix:"):
        return len(address) > 5
    if address.startswith("fd://"):
        return address[5:].isdigit()
    host, sep, port = address.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    return (
        bool(sep)
        and port.isdigit()
        and int(port) < 65536
        and (bracketed or ("[" not in host and ":" not in host))  # 0.0.0.0:80:80 is not a host
    )
