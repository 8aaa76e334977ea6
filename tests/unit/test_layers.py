"""The package's layer rules (docs/architecture.md#layers), checked on the source.

Every top-level unit of aioprefork (a sub-package, or a module such as tls.py) may import only the
units ALLOWED lists for it; the graph those rules allow has no cycle, and neither has the graph the
code really draws. From the bottom up:

    errors                                   the exception tree; imports nothing
    config, channel, wire, asgi              settings; the master/worker frames; pure wire
                                             helpers; ASGI types, loader, lifespan
    tls, listeners, snapshot, logs           what master and worker both use
    http                                     the connection (bytes -> ASGI -> bytes)
    worker                                   a worker process: accept gate, reporter
    control, metrics                         the control socket; Prometheus and status pages
    master                                   the arbiter, the pool, the fork boundary
    cli                                      the command line, at the top

Only the fork boundary forks; nothing pickles (a worker must not make the master run code).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "aioprefork"

BASE = {"errors"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "config": BASE,
    "channel": BASE,
    "wire": BASE,
    "asgi": BASE,
    "tls": BASE | {"config"},
    "listeners": BASE | {"config"},
    "snapshot": BASE,
    "logs": BASE | {"config"},
    "ratelimit": set(),
    "fdlimit": set(),
    "buildinfo": set(),
    "hooks": BASE | {"config"},
    "http": BASE | {"config", "channel", "wire", "asgi", "tls"},
    "worker": BASE
    | {"config", "channel", "wire", "asgi", "tls", "listeners", "logs", "http"}
    | {"hooks", "ratelimit", "fdlimit", "buildinfo"},
    "control": BASE,
    "metrics": BASE | {"config", "channel", "snapshot"},
    "master": BASE
    | {"__init__", "config", "channel", "listeners", "snapshot", "logs", "control", "metrics"}
    | {"hooks", "ratelimit", "buildinfo", "fdlimit"},
    "cli": BASE
    | {"__init__", "config", "wire", "tls", "listeners", "snapshot", "logs", "control", "metrics"}
    | {"master", "worker", "hooks", "buildinfo", "asgi"},
    "__init__": BASE | {"config"},
    "__main__": {"cli"},
}
# master/ reaches the worker side only where a worker is born (the child's entry point)
WORKER_FROM_MASTER = {"master/fork.py"}


def _unit(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _imports(path: Path) -> set[str]:
    units = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "aioprefork":  # a sub-package or module, else a name of __init__
                names = [
                    f"aioprefork.{alias.name}"
                    if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file()
                    else "aioprefork.__init__"
                    for alias in node.names
                ]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "aioprefork" and len(parts) > 1:
                units.add(parts[1])
    return units


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_unit_has_a_rule() -> None:
    assert {_unit(p) for p in _modules()} <= ALLOWED.keys(), "add the new unit to ALLOWED"


@pytest.mark.parametrize("unit", sorted(ALLOWED))
def test_a_unit_imports_only_what_it_may(unit: str) -> None:
    offenders = []
    for path in _modules():
        if _unit(path) != unit:
            continue
        allowed = ALLOWED[unit] | {unit}
        if str(path.relative_to(PACKAGE)) in WORKER_FROM_MASTER:
            allowed = allowed | {"worker"}
        bad = _imports(path) - allowed
        if bad:
            offenders.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert offenders == []


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """A cycle of `graph` as a path (empty when it has none)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return []


def test_the_rules_allow_no_cycle() -> None:
    assert _cycle({unit: set(allowed) for unit, allowed in ALLOWED.items()}) == []


def test_the_code_draws_no_cycle_across_folders() -> None:
    graph: dict[str, set[str]] = {}
    for path in _modules():
        graph.setdefault(_unit(path), set()).update(_imports(path) - {_unit(path)})
    assert _cycle(graph) == []


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


def test_nothing_pickles() -> None:
    """Nothing in the package pickles: a worker must not make the master run code."""
    for path in _modules():
        names = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        assert "pickle" not in names, path
