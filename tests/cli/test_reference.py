"""config/: the generated reference and the example files load, and cannot drift from the registry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from aioprefork.config.load import load
from aioprefork.config.model import SETTINGS, Config
from aioprefork.config.reference import render_reference_toml

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
ASSIGNMENT = re.compile(r"^#([a-z0-9_]+) = (.*)$", re.M)


def test_checked_in_reference_equals_the_generated_text() -> None:
    checked_in = (CONFIG_DIR / "reference.toml").read_text(encoding="utf-8")
    assert checked_in == render_reference_toml(), (
        "config/reference.toml is stale: "
        "python -m aioprefork.config.reference > config/reference.toml"
    )


def test_reference_lists_every_setting_once_with_its_env_name() -> None:
    text = render_reference_toml()
    names = [m.group(1) for m in ASSIGNMENT.finditer(text)]
    assert names == [s.name for s in SETTINGS]
    for info in SETTINGS:
        assert info.env in text


def test_uncommented_reference_defaults_load_back_to_the_defaults(tmp_path: Path) -> None:
    """Every default the reference shows is valid TOML that parses to the real default."""
    text = render_reference_toml()
    concrete = [
        (m.group(1), m.group(0)) for m in ASSIGNMENT.finditer(text) if "<" not in m.group(2)
    ]
    assert len(concrete) > 40
    body = "\n".join(line[1:] for _, line in concrete)
    path = tmp_path / "uncommented.toml"
    path.write_text(body, encoding="utf-8")
    loaded = load(config_file=str(path), env={})
    defaults = Config()
    for name, _ in concrete:
        assert getattr(loaded.config, name) == getattr(defaults, name), name
        assert loaded.sources[name] == f"file {path}"


@pytest.mark.parametrize("name", ["reference.toml", "production.toml", "development.toml"])
def test_every_example_file_loads(name: str) -> None:
    load(config_file=str(CONFIG_DIR / name), env={})


def test_production_example_is_behind_a_load_balancer_in_a_container() -> None:
    loaded = load(config_file=str(CONFIG_DIR / "production.toml"), env={})
    c = loaded.config
    assert c.binds() == ("0.0.0.0:8000",)
    assert c.lifespan == "auto"  # "on" stops every Django app (no lifespan support) from booting
    assert c.metrics_bind == "0.0.0.0:9464"
    assert c.proxy_protocol is False
    assert c.forwarded_allow_ips and "127.0.0.1" not in c.forwarded_allow_ips
    assert c.daemon is False
    assert loaded.sources["graceful_timeout"].startswith("file")
    assert c.keepalive_timeout > 60  # outlives the balancer's idle timeout


def test_development_example_is_small_and_local() -> None:
    c = load(config_file=str(CONFIG_DIR / "development.toml"), env={}).config
    assert c.binds() == ("127.0.0.1:8000",)
    assert c.workers == 1
    assert c.log_level == "debug"
    assert len((CONFIG_DIR / "development.toml").read_text().splitlines()) < 30
