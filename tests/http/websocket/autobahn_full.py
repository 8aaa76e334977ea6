"""The whole Autobahn fuzzing suite against `aioprefork serve examples.ws_echo:app`, by hand.

    .venv/bin/python tests/http/websocket/autobahn_full.py [--cases '9.*' ...] [--concurrency 2]

Runs cases 1-7, 9, 10 and 12-13 (permessage-deflate on, the default) with kosoku, the Rust
runner that drives Autobahn's own case files, and prints one line per section with the count
of each verdict. Exits 1 if any case is not OK, NON-STRICT or INFORMATIONAL. Takes minutes:
12-13 alone are ~220 cases of compressed traffic. The test suite runs a fast subset
(test_autobahn.py).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

import kosoku

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from support.launch import spawn

ALL_CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*", "12.*", "13.*"]


async def run(cases: list[str], concurrency: int, workdir: Path) -> int:
    # 9.x sends messages up to 16 MiB (the ws_max_size default); pings off: the echo must not
    # interleave control frames the cases do not expect.
    with spawn("examples.ws_echo:app", "--ws-ping-interval", "0", workdir=workdir) as served:
        started = time.monotonic()
        try:
            results = await kosoku.run_fuzzingclient(
                f"ws://127.0.0.1:{served.port}", cases=cases, concurrency=concurrency
            )
        except kosoku.FailureError as failure:
            results = failure.results
        elapsed = time.monotonic() - started
    by_section: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    failed = []
    for result in results:
        section = result.case_id.split(".")[0]
        by_section[section][f"{result.behavior.value}/{result.behavior_close.value}"] += 1
        if not result.passed:
            failed.append(result)
    print(f"Autobahn: {len(results)} cases in {elapsed:.0f}s (concurrency {concurrency})")
    for section in sorted(by_section, key=int):
        counts = ", ".join(f"{k} {v}" for k, v in sorted(by_section[section].items()))
        print(f"  {section:>2}.*  {counts}")
    for result in failed:
        print(f"FAILED {result.case_id}: {result.result} / {result.result_close}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="*", default=ALL_CASES)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        return asyncio.run(run(args.cases, args.concurrency, Path(workdir)))


if __name__ == "__main__":
    sys.exit(main())
