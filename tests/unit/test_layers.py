"""The package's layer rules (docs/architecture.md#layers), checked on the source so the architecture cannot drift.

protocol/ and asgi/ (the request path) know nothing of the master, control, metrics or CLI;
channel/ is shared by both sides and depends on nothing but errors; the master never imports the
request path; only the fork boundary and daemonisation call os.fork.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "aioprefork"

FORBIDDEN = {
    "protocol": {"master", "control", "metrics", "cli"},
    "asgi": {"master", "control", "metrics", "cli"},
    "channel": {"master", "worker", "protocol", "asgi", "control", "metrics", "cli", "config"},
    "master": {"protocol", "asgi"},
    "config": {"master", "worker", "protocol", "asgi", "control", "metrics", "cli", "channel"},
}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "aioprefork" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports(layer: str) -> None:
    offenders = []
    for path in (PACKAGE / layer).glob("*.py"):
        bad = _imported_layers(path) & FORBIDDEN[layer]
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert offenders == []


def _calls(path: Path, attr: str) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == attr
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            return True
    return False


def test_only_the_fork_boundary_forks() -> None:
    forkers = {str(p.relative_to(PACKAGE)) for p in _modules() if _calls(p, "fork")}
    assert forkers <= {"master/fork.py", "master/daemon.py"}, forkers


def test_channel_is_the_only_shared_wire_format() -> None:
    """Nothing outside channel/ pickles: a worker must not make the master run code."""
    for path in _modules():
        assert "pickle" not in _imported_names(path), path


def _imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names
