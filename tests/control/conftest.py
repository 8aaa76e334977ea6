"""Fixtures of the control-socket tests: the CLI tests' short socket directory."""

from __future__ import annotations

from cli.conftest import sock_dir

__all__ = ["sock_dir"]
