"""How a connection shows in the status views (`ctl status --requests`, /server-status): the
peer as one `host:port` string and the request target cut to a width. Built only when asked."""

from __future__ import annotations

__all__ = ["address", "cut_target"]


def address(pair: object) -> str:
    """("10.0.0.1", 5123) -> "10.0.0.1:5123", IPv6 in brackets; "-" when unknown (a Unix socket)."""
    if isinstance(pair, tuple | list) and len(pair) == 2:
        host = str(pair[0])
        return f"[{host}]:{pair[1]}" if ":" in host else f"{host}:{pair[1]}"
    return "-"


def cut_target(target: str, length: int) -> str:
    """A target shortened for display: `/very/long/pa…` (the ellipsis counts in `length`)."""
    return target if len(target) <= length else target[: max(0, length - 1)] + "\u2026"
