"""The mod_status renderers on constructed Snapshots: exact ?auto lines, a sane, escaped HTML page."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

from aioprefork.metrics.status_page import LETTER_KEY, render_auto, render_html

from .helpers import snapshot

VOID = {"meta", "br", "img", "input", "link", "hr"}


def auto(text: str) -> dict[str, str]:
    lines = text.splitlines()
    assert all(": " in line for line in lines), lines
    return dict(line.split(": ", 1) for line in lines)


def test_auto_lines_are_exact() -> None:
    text = render_auto(snapshot())
    data = auto(text)
    assert text.splitlines()[-1] == "Scoreboard: A_S.O."
    expected = {
        "ServerVersion": "aioprefork/0.1.0",
        "HotPath": "pure",
        "MasterPID": "4000",
        "MasterState": "running",
        "Generation": "2",
        "ServerUptimeSeconds": "3725",
        "ServerUptime": "1 hour 2 minutes 5 seconds",
        "Uptime": "3725",
        "Total Accesses": "1000",
        "Total kBytes": "128",
        "Total Connections": "123",
        "ReqPerSec": "0.268456",
        "BytesPerSec": "35.187114",
        "BytesPerReq": "131.072",
        "DurationPerReq": "250",
        "BusyWorkers": "1",
        "IdleWorkers": "1",
        "StartingWorkers": "1",
        "Processes": "4",
        "Stopping": "1",
        "ActiveWorkers": "3",
        "ConnsTotal": "10",
        "ConnsReading": "1",
        "ConnsActive": "2",
        "ConnsAsyncKeepAlive": "4",
        "ConnsAsyncClosing": "2",
        "ConnsUpgraded": "1",
        "SpareSlots": "193",
        "MinSpareSlots": "50",
        "MaxSpareSlots": "251",
        "SpawnRate": "2",
        "ServerLimit": "6",
        "WorkerConnections": "100",
    }
    assert {k: data[k] for k in expected} == expected
    assert data["CurrentTime"] == "2023-11-14 22:13:20 UTC"


def test_auto_on_a_fresh_master_divides_by_nothing() -> None:
    fresh = snapshot(
        slots=(),
        started_at=snapshot().now,
        totals=dataclasses.replace(
            snapshot().totals, requests=0, response_bytes=0, duration_count=0, duration_sum=0.0
        ),
    )
    data = auto(render_auto(fresh))
    assert data["ReqPerSec"] == "0" and data["BytesPerReq"] == "0"
    assert data["ServerUptime"] == "0 seconds"
    assert data["Scoreboard"] == "......"


class Shape(HTMLParser):
    """Checks nesting and collects what the assertions need."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.rows = 0
        self.cells: list[str] = []
        self.meta: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "meta":
            self.meta.append(a)
        if tag in ("script", "link", "img", "iframe") or (a.get("src") or "").startswith("http"):
            self.external.append(tag)
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "tr" and "tbody" in self.stack:
            self.rows += 1
        self._in_cell = tag == "span" and "cell" in (a.get("class") or "").split()

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (tag, self.stack[-5:])
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)
            self._in_cell = False


def test_html_page_shape() -> None:
    page = render_html(snapshot(), refresh=7)
    shape = Shape()
    shape.feed(page)
    shape.close()
    assert shape.stack == []
    assert "<span>hot path pure</span>" in page
    assert "<span>hot path compiled</span>" in render_html(snapshot(hot_path="compiled"))
    assert {"http-equiv": "refresh", "content": "7"} in shape.meta
    assert shape.external == []  # self-contained: no script, stylesheet link or remote asset
    assert "https://" not in page and "http://" not in page
    # Scoreboard: server_limit cells, then the key; then one badge per worker row.
    assert "".join(shape.cells[:6]) == "A_S.O."
    assert "".join(shape.cells[6 : 6 + len(LETTER_KEY)]) == "".join(k[0] for k in LETTER_KEY)
    worker_rows = 4
    request_rows, rejected_rows, cause_rows, restart_rows = 3, 2, 5, 4
    assert shape.rows == worker_rows + request_rows + rejected_rows + cause_rows + restart_rows
    for text in (
        "4100",
        "4101",
        "4102",
        "3900",
        "old (graceful)",
        "1,000",
        "128.0 KiB",
        "rolled_back",
        "heartbeat timeout",
        "50.0 MiB",
    ):
        assert text in page, text


def test_html_escapes_everything() -> None:
    evil = snapshot(version='<script>alert("x")</script>', master_state="<b>")
    page = render_html(evil)
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;" in page


def test_html_without_workers() -> None:
    page = render_html(snapshot(slots=()))
    assert "no workers" in page
