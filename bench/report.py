"""Results: per-run records, medians over rounds, ratios, issue-8 targets, Markdown and JSON.

Pure: nothing here runs a process or reads the clock. `summarize()` turns the runs of every round
into one median row per (workers, scenario, server); `render()` prints those as Markdown tables
with req/s ratios to uvicorn and granian and the distance to the raw ceiling; `targets()` checks
the issue-8 goals on whatever was measured (a goal whose inputs were not measured is left out).

Memory is reported three ways: RSS (the issue's literal target), PSS and USS. A forked worker
shares the master's pages copy-on-write, and RSS counts each of them fully in every process, so a
prefork worker looks as big as its master; PSS splits shared pages among their sharers (the group's
PSS total is what it really occupies) and USS is what one more worker adds. A PSS or USS of 0 means
"not read" (smaps_rollup missing or the process gone) and shows as "-", never as a win.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

MIB: Final = 1024 * 1024
REFERENCES: Final = ("uvicorn", "granian")  # ratio columns, when measured
SUBJECT: Final = "aioprefork"
CEILING: Final = "raw"
# wrk busier than this: req/s was the client's limit (a 2-core machine reading 64 KiB responses).
CLIENT_BOUND: Final = 0.95


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement:
    """One server, one scenario, one round."""

    round: int
    workers: int
    server: str
    scenario: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # wrk socket errors + non-2xx/3xx
    cpu_seconds: float  # whole process group, during the measured window
    rss_total: int  # bytes, whole process group, after the window
    worker_rss: tuple[int, ...]  # bytes per serving process
    worker_cpu: tuple[float, ...]  # seconds per serving process
    pss_total: int = 0  # bytes, whole process group, after the window; 0 = not read
    worker_pss: tuple[int, ...] = ()  # bytes per serving process; 0 = not read
    worker_uss: tuple[int, ...] = ()  # bytes per serving process; 0 = not read
    worker_requests: tuple[int, ...] | None = None  # from the scoreboard (aioprefork)
    startup_s: float = 0.0
    exited: int = 0  # server processes that died during or just after the measured window
    note: str = ""  # why the run deserves a second look (with the server log's tail)
    sys_seconds: float = 0.0  # the kernel's part of cpu_seconds
    client_busy: float = 0.0  # share of its cores wrk kept busy (0 = not measured)

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1e6 if self.requests else 0.0

    @property
    def sys_us_per_request(self) -> float:
        return self.sys_seconds / self.requests * 1e6 if self.requests else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    round: int
    workers: int
    server: str
    scenario: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """Medians over the rounds of one (workers, scenario, server)."""

    workers: int
    scenario: str
    server: str
    rounds: int
    rps: float
    rps_min: float
    rps_max: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_request: float
    rss_total: int
    rss_per_worker: int  # median over rounds of the mean worker RSS
    rss_per_worker_max: int
    errors: int  # summed over rounds
    exited: int  # server processes that died, summed over rounds
    worker_cpu_share: tuple[float, ...]  # last round: each worker's share of worker CPU
    worker_rss: tuple[int, ...]  # last round: bytes per worker
    worker_requests: tuple[int, ...] | None  # last round with scoreboard counts
    pss_total: int = 0  # median over rounds that read it; 0 = never read
    pss_per_worker: int = 0  # median over rounds of the mean worker PSS; 0 = never read
    uss_per_worker: int = 0  # median over rounds of the mean worker USS; 0 = never read
    worker_pss: tuple[int, ...] = ()  # last round: bytes per worker
    sys_us_per_request: float = 0.0  # the kernel's part of cpu_us_per_request
    client_busy: float = 0.0  # median share of its cores wrk kept busy (0 = not measured)


def _median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else 0.0


def _known_mean(values: Sequence[int]) -> float | None:
    """Mean of the values that were read (> 0); None if none was: a process that vanished
    between its stat and its smaps_rollup must not pull the mean towards 0."""
    known = [v for v in values if v > 0]
    return statistics.fmean(known) if known else None


def _median_known(values: Iterable[float | None]) -> int:
    return int(_median(v for v in values if v is not None and v > 0))


def summarize(runs: Sequence[Measurement]) -> list[Summary]:
    """Group by (workers, scenario, server) in first-seen order; medians per metric."""
    groups: dict[tuple[int, str, str], list[Measurement]] = {}
    for run in runs:
        groups.setdefault((run.workers, run.scenario, run.server), []).append(run)
    summaries = []
    for (workers, scenario, server), group in groups.items():
        last = group[-1]
        worker_cpu = sum(last.worker_cpu)
        counted = [r.worker_requests for r in group if r.worker_requests]
        summaries.append(
            Summary(
                workers=workers,
                scenario=scenario,
                server=server,
                rounds=len(group),
                rps=_median(r.rps for r in group),
                rps_min=min(r.rps for r in group),
                rps_max=max(r.rps for r in group),
                p50_ms=_median(r.p50_ms for r in group),
                p99_ms=_median(r.p99_ms for r in group),
                cpu_us_per_request=_median(r.cpu_us_per_request for r in group),
                rss_total=int(_median(r.rss_total for r in group)),
                rss_per_worker=int(
                    _median(statistics.fmean(r.worker_rss) for r in group if r.worker_rss)
                ),
                rss_per_worker_max=max((max(r.worker_rss, default=0) for r in group), default=0),
                errors=sum(r.errors for r in group),
                exited=sum(r.exited for r in group),
                worker_cpu_share=tuple(c / worker_cpu for c in last.worker_cpu)
                if worker_cpu
                else (),
                worker_rss=last.worker_rss,
                worker_requests=counted[-1] if counted else None,
                pss_total=_median_known(r.pss_total for r in group),
                pss_per_worker=_median_known(_known_mean(r.worker_pss) for r in group),
                uss_per_worker=_median_known(_known_mean(r.worker_uss) for r in group),
                worker_pss=last.worker_pss,
                sys_us_per_request=_median(r.sys_us_per_request for r in group),
                client_busy=_median(r.client_busy for r in group),
            )
        )
    return summaries


def _index(summaries: Sequence[Summary]) -> dict[tuple[int, str, str], Summary]:
    return {(s.workers, s.scenario, s.server): s for s in summaries}


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    goal: str
    measured: str
    met: bool


def _ratio_target(
    goal: str, value: float, reference: float, floor: float, client_busy: float = 0.0
) -> Target:
    """`value` >= floor x `reference`; a miss while wrk was saturated says so."""
    ratio = value / reference if reference else 0.0
    measured = f"{ratio:.2f}x"
    if ratio < floor and client_busy >= CLIENT_BOUND:
        measured += f" (wrk {client_busy:.0%} busy: the client's limit, not the server's)"
    return Target(goal=goal, measured=measured, met=ratio >= floor)


def targets(summaries: Sequence[Summary]) -> list[Target]:
    """The issue-8 goals that the measured (workers, scenario, server) rows allow checking."""
    at = _index(summaries)
    found: list[Target] = []
    floors = {"hello": (2.5, 1.2), "json": (2.5, 1.2), "echo": (1.5, None)}
    floors |= {"stream": (1.5, None), "big": (1.5, None)}
    for scenario, (vs_uvicorn, vs_granian) in floors.items():
        ours = at.get((1, scenario, SUBJECT))
        if ours is None:
            continue
        uvicorn, granian = at.get((1, scenario, "uvicorn")), at.get((1, scenario, "granian"))
        if uvicorn is not None:
            found.append(
                _ratio_target(
                    f"{scenario}: req/s >= {vs_uvicorn}x uvicorn",
                    ours.rps,
                    uvicorn.rps,
                    vs_uvicorn,
                    ours.client_busy,
                )
            )
        if granian is not None and vs_granian is not None:
            found.append(
                _ratio_target(
                    f"{scenario}: req/s >= {vs_granian}x granian",
                    ours.rps,
                    granian.rps,
                    vs_granian,
                    ours.client_busy,
                )
            )
        others = [o for o in (uvicorn, granian) if o is not None]
        if others:
            names = " and ".join(o.server for o in others)
            found.append(
                Target(
                    goal=f"{scenario}: p99 below {names}",
                    measured=f"{ours.p99_ms:.2f} ms vs "
                    + ", ".join(f"{o.p99_ms:.2f}" for o in others),
                    met=all(ours.p99_ms < o.p99_ms for o in others),
                )
            )
            found.append(
                Target(
                    goal=f"{scenario}: CPU per request lowest",
                    measured=f"{ours.cpu_us_per_request:.1f} us vs "
                    + ", ".join(f"{o.cpu_us_per_request:.1f}" for o in others),
                    met=all(ours.cpu_us_per_request < o.cpu_us_per_request for o in others),
                )
            )
        if uvicorn is not None:
            found.append(
                Target(
                    goal=f"{scenario}: RSS per worker <= uvicorn",
                    measured=f"{ours.rss_per_worker / MIB:.1f} vs {uvicorn.rss_per_worker / MIB:.1f} MiB",
                    met=ours.rss_per_worker <= uvicorn.rss_per_worker,
                )
            )
        if uvicorn is not None and ours.pss_per_worker and uvicorn.pss_per_worker:
            found.append(
                Target(
                    goal=f"{scenario}: PSS per worker <= uvicorn's",
                    measured=f"{ours.pss_per_worker / MIB:.1f} vs {uvicorn.pss_per_worker / MIB:.1f} MiB",
                    met=ours.pss_per_worker <= uvicorn.pss_per_worker,
                )
            )
    one, eight = at.get((1, "hello", SUBJECT)), at.get((8, "hello", SUBJECT))
    if one is not None and eight is not None:
        found.append(
            _ratio_target(
                "hello: 8 workers >= 7x 1 worker", eight.rps, one.rps, 7.0, eight.client_busy
            )
        )
    granian8 = at.get((8, "hello", "granian"))
    if eight is not None and granian8 is not None:
        found.append(
            _ratio_target(
                "hello: 8 workers >= 1.5x granian's 8",
                eight.rps,
                granian8.rps,
                1.5,
                eight.client_busy,
            )
        )
    return found


def _fmt_rps(value: float) -> str:
    return f"{value:,.0f}"


def _fmt_mib(value: int) -> str:
    """Bytes as MiB; 0 (not read) as "-"."""
    return f"{value / MIB:.1f}" if value else "-"


def _fmt_ratio(value: float, reference: Summary | None) -> str:
    return f"{value / reference.rps:.2f}" if reference and reference.rps else "-"


def _table(rows: Sequence[Summary], references: Sequence[str], labels: Mapping[str, str]) -> str:
    by_server = {s.server: s for s in rows}
    refs = [r for r in references if r in by_server]
    head = ["server", "req/s", "spread"] + [f"x {r}" for r in refs]
    head += ["p50 ms", "p99 ms", "CPU us/req", "sys us/req", "wrk busy", "RSS MiB", "PSS MiB"]
    head += ["RSS/worker MiB", "PSS/worker MiB", "USS/worker MiB", "errors"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for s in rows:
        spread = (s.rps_max - s.rps_min) / s.rps * 100 if s.rps else 0.0
        cells = [labels.get(s.server, s.server), _fmt_rps(s.rps), f"{spread:.0f}%"]
        cells += [_fmt_ratio(s.rps, by_server[r]) for r in refs]
        cells += [
            f"{s.p50_ms:.2f}",
            f"{s.p99_ms:.2f}",
            f"{s.cpu_us_per_request:.1f}",
            f"{s.sys_us_per_request:.1f}",
            f"{s.client_busy:.0%}" if s.client_busy else "-",
            f"{s.rss_total / MIB:.1f}",
            _fmt_mib(s.pss_total),
            f"{s.rss_per_worker / MIB:.1f}",
            _fmt_mib(s.pss_per_worker),
            _fmt_mib(s.uss_per_worker),
            str(s.errors),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ceiling_line(rows: Sequence[Summary]) -> str:
    by_server = {s.server: s for s in rows}
    ours, ceiling = by_server.get(SUBJECT), by_server.get(CEILING)
    if ours is None or ceiling is None or not ceiling.rps:
        return ""
    return f"aioprefork reaches {ours.rps / ceiling.rps:.0%} of the raw ceiling's req/s.\n"


def _spread_lines(rows: Sequence[Summary], labels: Mapping[str, str]) -> list[str]:
    lines = []
    for s in rows:
        if len(s.worker_cpu_share) > 1:
            shares = ", ".join(f"{x:.0%}" for x in s.worker_cpu_share)
            rss = ", ".join(f"{x / MIB:.1f}" for x in s.worker_rss)
            pss = ", ".join(_fmt_mib(x) for x in s.worker_pss)
            lines.append(
                f"- {labels.get(s.server, s.server)}: worker CPU shares {shares}; "
                f"worker RSS MiB {rss}" + (f"; worker PSS MiB {pss}" if any(s.worker_pss) else "")
            )
        if s.worker_requests:
            counts = ", ".join(f"{n:,}" for n in s.worker_requests)
            lines.append(
                f"- {labels.get(s.server, s.server)}: requests per worker (scoreboard) {counts}"
            )
    return lines


def _scaling(summaries: Sequence[Summary], labels: Mapping[str, str]) -> list[str]:
    levels = sorted({s.workers for s in summaries})
    if len(levels) < 2:
        return []
    at = _index(summaries)
    out = ["## Scaling (req/s by workers)", ""]
    for scenario in dict.fromkeys(s.scenario for s in summaries):
        servers = list(dict.fromkeys(s.server for s in summaries if s.scenario == scenario))
        head = ["server"] + [f"N={n}" for n in levels] + [f"N={levels[-1]} / N={levels[0]}"]
        out += [f"### {scenario}", "", "| " + " | ".join(head) + " |"]
        out.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
        for server in servers:
            cells = [labels.get(server, server)]
            cells += [
                _fmt_rps(at[(n, scenario, server)].rps) if (n, scenario, server) in at else "-"
                for n in levels
            ]
            first, last = (
                at.get((levels[0], scenario, server)),
                at.get((levels[-1], scenario, server)),
            )
            cells.append(f"{last.rps / first.rps:.2f}" if first and last and first.rps else "-")
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    return out


def _indented(lines: str) -> str:
    return lines.strip().replace("\n", "\n    ")


def render(
    summaries: Sequence[Summary],
    failures: Sequence[Failure],
    meta: Mapping[str, Any],
    descriptions: Mapping[str, str],
    labels: Mapping[str, str],
    runs: Sequence[Measurement] = (),
) -> str:
    """The whole report as Markdown."""
    out = [f"# aioprefork benchmark, {meta['timestamp']}", ""]
    out += [f"- {key}: {value}" for key, value in meta.items() if key != "timestamp"]
    out.append("")
    for workers in sorted({s.workers for s in summaries}):
        noun = "worker" if workers == 1 else "workers"
        for scenario in dict.fromkeys(s.scenario for s in summaries if s.workers == workers):
            rows = [s for s in summaries if s.workers == workers and s.scenario == scenario]
            title = f"## {scenario} ({descriptions.get(scenario, '')}), {workers} {noun}"
            out += [title, "", _table(rows, REFERENCES, labels), ""]
            ceiling = _ceiling_line(rows)
            if ceiling:
                out += [ceiling]
            spread = _spread_lines(rows, labels) if workers > 1 else []
            if spread:
                out += [*spread, ""]
    out += _scaling(summaries, labels)
    goals = targets(summaries)
    if goals:
        out += ["## Issue 8 targets", "", "| goal | measured | met |", "|---|---|---|"]
        out += [f"| {t.goal} | {t.measured} | {'yes' if t.met else 'NO'} |" for t in goals]
        out.append("")
    noted = [r for r in runs if r.note]
    if noted:
        out += ["## Warnings (measured, but look at these)", ""]
        for r in noted:
            where = f"round {r.round}, {r.server}, {r.scenario}, {r.workers} workers"
            out.append(f"- {where}:\n    {_indented(r.note)}")
        out.append("")
    if failures:
        out += ["## Failed runs", ""]
        for f in failures:
            where = f"round {f.round}, {f.server}, {f.scenario}, {f.workers} workers"
            out.append(f"- {where}:\n    {_indented(f.reason)}")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def to_json(
    runs: Sequence[Measurement],
    failures: Sequence[Failure],
    summaries: Sequence[Summary],
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "meta": dict(meta),
        "summary": [dataclasses.asdict(s) for s in summaries],
        "targets": [dataclasses.asdict(t) for t in targets(summaries)],
        "runs": [
            dataclasses.asdict(r)
            | {
                "cpu_us_per_request": r.cpu_us_per_request,
                "sys_us_per_request": r.sys_us_per_request,
            }
            for r in runs
        ],
        "failures": [dataclasses.asdict(f) for f in failures],
    }
