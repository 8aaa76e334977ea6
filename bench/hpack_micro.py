"""Microseconds per header block of HPACK (aioprefork/http/h2/hpack.py), in process.

    .venv/bin/python bench/hpack_micro.py                              # pure Python
    PYTHONPATH=build/compiled .venv/bin/python bench/hpack_micro.py    # the mypyc build

The blocks are h2load's: a GET of / with :authority, user-agent, accept and accept-encoding, the
first of a connection (every field a literal, Huffman-coded, indexed; its strings come from the
worker's memo after the first run, as the same user-agent on another connection would) and the
ones after it (every field one or two bytes from the tables). The response is a hello app's
(:status 200, content-type, content-length, date, server), the same each time (the encoder's
last block) or with a new content-length each time (every field looked up). Last, the Huffman
decoding of a string the memo does not hold (a browser's user-agent). Best of five runs; the
machine's load shows in the spread, so compare builds in one sitting.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from aioprefork.http.h2 import hpack, huffman  # noqa: E402

REQUEST: Final[list[hpack.Header]] = [
    (b":method", b"GET"),
    (b":path", b"/"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"user-agent", b"h2load nghttp2/1.64.0"),
]
RESPONSE: Final[list[hpack.Header]] = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", b"13"),
    (b"date", b"Sat, 05 Dec 2026 08:45:00 GMT"),
    (b"server", b"aioprefork"),
]


def _per_call(action: Callable[[], object], calls: int) -> float:
    """Best of five: microseconds per call."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(calls):
            action()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    calls = parser.parse_args().calls
    encoder = hpack.Encoder()
    first = encoder.encode(REQUEST)
    later = encoder.encode(REQUEST)
    decoder = hpack.Decoder()
    assert decoder.decode(first) == REQUEST and decoder.decode(later) == REQUEST
    response_encoder = hpack.Encoder()
    response_encoder.encode_response(200, RESPONSE)
    # content-length 10-99 in turn: the last block never matches, every field is looked up
    lengths = [
        [(name, b"%d" % size if name == b"content-length" else value) for name, value in RESPONSE]
        for size in range(10, 100)
    ]
    varied = itertools.cycle(lengths)

    compiled = hpack.__file__ is not None and not hpack.__file__.endswith(".py")
    print(f"hpack {'mypyc-compiled' if compiled else 'pure Python'}: {hpack.__file__}")
    print(f"request blocks: first {len(first)} bytes, later {len(later)} bytes")
    rows = [
        ("decode request, later block", lambda: decoder.decode(later)),
        ("decode request, first block", lambda: hpack.Decoder().decode(first)),
        ("encode request, later block", lambda: encoder.encode(REQUEST)),
        ("encode request, first block", lambda: hpack.Encoder().encode(REQUEST)),
        (
            "encode response, same as the last",
            lambda: response_encoder.encode_response(200, RESPONSE),
        ),
        (
            "encode response, new length each",
            lambda: response_encoder.encode_response(200, next(varied)),
        ),
    ]
    user_agent = huffman.encode(b"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101")
    rows.append(
        (
            f"Huffman decode, {len(user_agent)} bytes, no memo",
            lambda: huffman.decode(user_agent, 0, len(user_agent)),
        )
    )
    for label, action in rows:
        print(
            f"  {label:34} {_per_call(action, calls // 4 if 'first' in label else calls):7.3f} us"
        )


if __name__ == "__main__":
    main()
