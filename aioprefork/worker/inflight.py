"""The requests in flight of one worker, for `ctl status --requests` and /server-status?requests.

Built only when the master asks (a ListRequests frame): nothing is recorded per request, the
live connections are walked once and each describes itself (`request_row`). Bounded twice: at
most `limit` rows go back, the oldest, and each target is cut to `target_length` characters, so
a worker holding 10,000 connections answers in one small frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from aioprefork.channel.messages import RequestRow


class Describable(Protocol):
    def request_row(self, target_length: int) -> RequestRow | None:
        """(client, peer, protocol, method, target, phase, age in seconds, by the connection's
        own clock); None when nothing to show."""


class DescribableStreams(Protocol):
    def request_rows(self, target_length: int) -> list[RequestRow]:
        """A row per request in flight, as request_row's: a connection that multiplexes
        (HTTP/2) has several at once."""


def collect(
    connections: Iterable[object], limit: int, target_length: int
) -> tuple[int, tuple[RequestRow, ...]]:
    """(how many requests are in flight, the `limit` oldest of them)."""
    rows: list[RequestRow] = []
    for conn in connections:
        describe = getattr(conn, "request_row", None)
        if describe is not None:
            row = describe(target_length)
            if row is not None:
                rows.append(row)
            continue
        several = getattr(conn, "request_rows", None)
        if several is not None:
            rows.extend(several(target_length))
    rows.sort(key=lambda row: row[6], reverse=True)
    return len(rows), tuple(rows[:limit])
