"""Config merging, units, validation and the registry-generated CLI surface (pure, no processes)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from aioprefork.config import units
from aioprefork.config.load import load
from aioprefork.config.model import BY_NAME, SETTINGS, VIEWS, Config, HttpLimits, PoolPolicy
from aioprefork.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("64KiB", 65536),
        ("1GiB", 1 << 30),
        ("10MB", 10_000_000),
        (4096, 4096),
        ("512", 512),
        ("1.5k", 1500),
    ],
)
def test_sizes(raw: object, expected: int) -> None:
    assert units.parse_size(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("30s", 30.0), ("500ms", 0.5), ("2m", 120.0), (5, 5.0), ("1h", 3600.0), ("0.25", 0.25)],
)
def test_durations(raw: object, expected: float) -> None:
    assert units.parse_duration(raw) == expected


@pytest.mark.parametrize("raw", ["ten", "5 parsecs", "-1", True, "1..2s"])
def test_bad_durations(raw: object) -> None:
    with pytest.raises(ValueError):
        units.parse_duration(raw)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-3, "0s"), (0.9, "0s"), (59.99, "59s"), (725, "12m05s"), (11220, "3h07m"), (187200, "2d04h")],
)
def test_ages_show_their_two_largest_units(seconds: float, text: str) -> None:
    assert units.format_age(seconds) == text


def test_networks_accept_ips_cidrs_and_wildcards() -> None:
    assert units.parse_networks("10.0.0.0/8, ::1,*,unix") == ("10.0.0.0/8", "::1", "*", "unix")
    with pytest.raises(ValueError, match="not an IP"):
        units.parse_networks("10.0.0.0/8,example.com")


def test_defaults_and_derived_values() -> None:
    loaded = load(env={})
    c = loaded.config
    assert c.worker_connections == 1000
    assert c.min_spare_slots == 500
    assert c.max_spare_slots == 2500
    assert c.server_limit == 2 * c.max_workers
    assert c.limit_request_line == 8190 and c.limit_request_fields == 100
    assert c.limit_request_body == 1 << 30
    assert c.keepalive_timeout == 5.0 and c.header_timeout == 20.0
    assert loaded.sources["worker_connections"] == "default"
    assert loaded.sources["max_workers"] == "auto"
    assert c.binds() == ("127.0.0.1:8000",)


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path) -> None:
    toml = tmp_path / "a.toml"
    toml.write_text(
        'port = 7001\nkeepalive_timeout = "7s"\n[processes]\nworkers = 3\nmax_workers = 6\n'
    )
    env = {"AIOPREFORK_PORT": "7002", "AIOPREFORK_WORKERS": "4"}
    loaded = load({"port": "7003"}, config_file=str(toml), env=env)
    c = loaded.config
    assert c.port == 7003 and loaded.sources["port"] == "cli"
    assert c.workers == 4 and loaded.sources["workers"] == "env AIOPREFORK_WORKERS"
    assert c.keepalive_timeout == 7.0 and loaded.sources["keepalive_timeout"] == f"file {toml}"
    assert c.max_workers == 6
    assert c.header_timeout == 20.0 and loaded.sources["header_timeout"] == "default"


def test_config_file_from_environment(tmp_path: Path) -> None:
    toml = tmp_path / "b.toml"
    toml.write_text("worker_connections = 10\n")
    assert load(env={"AIOPREFORK_CONFIG": str(toml)}).config.worker_connections == 10


@pytest.mark.parametrize(
    ("cli", "env", "file_text", "message"),
    [
        (
            {"port": "eighty"},
            {},
            None,
            "config error: port = 'eighty' (from cli): expected an integer",
        ),
        (
            {},
            {"AIOPREFORK_KEEPALIVE_TIMEOUT": "soon"},
            None,
            "keepalive_timeout = 'soon' (from env AIOPREFORK_KEEPALIVE_TIMEOUT)",
        ),
        ({}, {}, "wrokers = 3\n", "wrokers = 3 (from file"),
        ({}, {}, 'workers = "many"\n', "workers = 'many' (from file"),
        (
            {"min_workers": "9", "max_workers": "4"},
            {},
            None,
            "min_workers = 9 (from cli): must not exceed max_workers (4)",
        ),
        ({"lifespan": "maybe"}, {}, None, "expected one of auto, on, off"),
        ({"bind": "localhost"}, {}, None, "bind = 'localhost'"),
        ({"worker_connections": "0"}, {}, None, "must be at least 1"),
    ],
)
def test_errors_name_key_value_and_source(
    tmp_path: Path, cli: dict[str, str], env: dict[str, str], file_text: str | None, message: str
) -> None:
    config_file = None
    if file_text is not None:
        path = tmp_path / "bad.toml"
        path.write_text(file_text)
        config_file = str(path)
    with pytest.raises(ConfigError) as info:
        load(cli, config_file=config_file, env=env)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_broken_toml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("workers = [\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(config_file=str(path), env={})


def test_views_are_built_once_from_config() -> None:
    c = load({"limit_request_body": "1MiB", "worker_connections": "50"}, env={}).config
    assert HttpLimits.from_config(c).limit_request_body == 1 << 20
    assert PoolPolicy.from_config(c).worker_connections == 50


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.__name__)
def test_a_view_field_is_a_setting_with_its_type_and_default(view: type) -> None:
    """Views copy no setting by hand: each field is named after one (or listed as derived)."""
    config_types = {f.name: f.type for f in dataclasses.fields(Config)}
    for field in dataclasses.fields(view):
        name = view.PREFIX + field.name  # type: ignore[attr-defined]
        if field.name in view.DERIVED:  # type: ignore[attr-defined]
            assert name not in BY_NAME, f"{view.__name__}.{field.name} is a setting, not derived"
            continue
        assert name in BY_NAME, f"{view.__name__}.{field.name}: no setting {name!r}"
        assert field.type == config_types[name], f"{view.__name__}.{field.name}: type differs"
        if field.default is not dataclasses.MISSING:
            assert field.default == BY_NAME[name].default, f"{view.__name__}.{field.name}"


def test_from_config_fills_every_setting_field_from_the_config() -> None:
    c = load({"limit_request_line": "100", "ws_max_queue": "3", "boot_timeout": "7"}, env={}).config
    http, pool = HttpLimits.from_config(c), PoolPolicy.from_config(c)
    assert (http.limit_request_line, pool.boot_timeout, pool.max_workers) == (
        100,
        7.0,
        c.max_workers,
    )
    assert http.websocket is not None and http.websocket.max_queue == 3
    assert HttpLimits.from_config(dataclasses.replace(c, ws="none")).websocket is None


def test_every_setting_has_help_section_and_env_name() -> None:
    names = set()
    for info in SETTINGS:
        assert info.spec.help and info.spec.section
        assert info.env == "AIOPREFORK_" + info.name.upper()
        names.add(info.name)
    assert {"workers", "max_workers", "graceful_timeout", "forwarded_allow_ips"} <= names


def test_workers_is_the_floor_unless_min_workers_is_set() -> None:
    """`--workers 4` runs 4 (every other server's meaning): maintenance may grow the pool up to
    max_workers and shrink it back to 4, never below; min_workers below it opts into Apache's
    spare pool, which retires idle workers down to min_workers."""
    loaded = load({"workers": "4", "max_workers": "8"}, env={})
    assert loaded.config.min_workers == 4
    assert loaded.sources["min_workers"] == "auto"
    assert PoolPolicy.from_config(loaded.config).min_workers == 4
    spare = load({"workers": "4", "min_workers": "1", "max_workers": "8"}, env={}).config
    assert (spare.workers, spare.min_workers) == (4, 1)
    assert load({"workers": "0"}, env={}).config.min_workers == 1  # in-process: no pool
