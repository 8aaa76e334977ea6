"""Fixtures for the HTTP protocol tests: `serve` (tests/support/serving.py)."""

from __future__ import annotations

from support.serving import serve

__all__ = ["serve"]
