"""The Autobahn fuzzing suite (via kosoku, which runs Autobahn's own case files) against the echo
example served by a real `aioprefork serve` process: a fast subset here, the whole suite in
autobahn_full.py (run by hand: `.venv/bin/python tests/http/websocket/autobahn_full.py`).

Every case must come out OK, NON-STRICT or INFORMATIONAL (kosoku's `passed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kosoku
import pytest
from support.launch import spawn

# All of 1-7 (framing, pings, reserved bits, opcodes, fragmentation, UTF-8, closing), plus a
# slice of 9 (limits and performance) and of 12-13 (permessage-deflate, several parameters).
FAST_CASES = [
    *(f"{n}.*" for n in range(1, 8)),
    "9.1.1", "9.1.2", "9.2.1", "9.2.2", "9.3.1", "9.4.1", "9.5.1", "9.6.1", "9.7.1", "9.8.1",
    "12.1.1", "12.1.2", "12.2.1", "12.3.1", "12.4.1", "12.5.1",
    "13.1.1", "13.2.1", "13.3.1", "13.4.1", "13.5.1", "13.6.1", "13.7.1",
]  # fmt: skip


def _verdicts(results: list[Any]) -> list[str]:  # kosoku.CaseResult
    return [
        f"{r.case_id}: {r.behavior.value}/{r.behavior_close.value} {r.result} {r.result_close}"
        for r in results
        if not r.passed
    ]


# kosoku's Python case files (Autobahn's, translated) open data files they never close.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(150)
async def test_autobahn_fast_subset(tmp_path: Path) -> None:
    with spawn("examples.ws_echo:app", "--ws-ping-interval", "0", workdir=tmp_path) as served:
        try:
            results = await kosoku.run_fuzzingclient(
                f"ws://127.0.0.1:{served.port}", cases=FAST_CASES, concurrency=2
            )
        except kosoku.FailureError as failure:
            pytest.fail("Autobahn cases failed:\n" + "\n".join(_verdicts(failure.results)))
    assert len(results) > 250
    assert _verdicts(results) == []
