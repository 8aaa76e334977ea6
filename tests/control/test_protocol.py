"""control/protocol.py: framing and request validation, table-driven, no sockets."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from aioprefork.control import protocol
from aioprefork.errors import ProtocolViolation


def test_encode_is_length_prefixed_compact_json() -> None:
    frame = protocol.encode({"v": 1, "cmd": "status"})
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert json.loads(frame[4:]) == {"v": 1, "cmd": "status"}


@pytest.mark.parametrize(
    ("header", "problem"),
    [
        (b"\x00\x00", "truncated"),
        (struct.pack(">I", 0), "empty"),
        (struct.pack(">I", protocol.MAX_REQUEST + 1), "exceeds"),
        (b"\xff\xff\xff\xff", "exceeds"),
    ],
)
def test_bad_headers(header: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        protocol.frame_length(header)


def test_max_request_is_accepted() -> None:
    assert protocol.frame_length(struct.pack(">I", protocol.MAX_REQUEST)) == protocol.MAX_REQUEST


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{nope", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"status"', "not a JSON object"),
    ],
)
def test_bad_bodies(body: bytes, problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        protocol.decode_body(body)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"v": 1, "cmd": "status"}, {"v": 1, "cmd": "status"}),
        ({"v": 1, "cmd": "graceful"}, {"v": 1, "cmd": "graceful"}),
        ({"v": 1, "cmd": "stop"}, {"v": 1, "cmd": "stop"}),
        (
            {"v": 1, "cmd": "stop", "now": True, "timeout": 5},
            {"v": 1, "cmd": "stop", "now": True, "timeout": 5.0},
        ),
        ({"v": 1, "cmd": "stop", "timeout": None}, {"v": 1, "cmd": "stop", "timeout": None}),
        ({"v": 1, "cmd": "scale", "n": "+1"}, {"v": 1, "cmd": "scale", "n": "+1"}),
        ({"v": 1, "cmd": "scale", "n": "-1"}, {"v": 1, "cmd": "scale", "n": "-1"}),
        ({"v": 1, "cmd": "scale", "n": 4}, {"v": 1, "cmd": "scale", "n": "4"}),
        ({"v": 1, "cmd": "graceful-stop"}, {"v": 1, "cmd": "graceful-stop"}),
        ({"v": 1, "cmd": "reopen-logs"}, {"v": 1, "cmd": "reopen-logs"}),
    ],
)
def test_valid_requests_are_normalised(request_: dict[str, Any], expected: dict[str, Any]) -> None:
    assert protocol.parse_request(request_) == expected


@pytest.mark.parametrize(
    ("request_", "problem"),
    [
        ({"cmd": "status"}, "version"),
        ({"v": 2, "cmd": "status"}, "version"),
        ({"v": "1", "cmd": "status"}, "version"),
        ({"v": 1}, "'cmd' must be a string"),
        ({"v": 1, "cmd": 7}, "'cmd' must be a string"),
        ({"v": 1, "cmd": "format-disk"}, "unknown command"),
        ({"v": 1, "cmd": "status", "extra": 1}, "takes no argument"),
        ({"v": 1, "cmd": "stop", "now": "yes"}, "'now'"),
        ({"v": 1, "cmd": "stop", "timeout": "10s"}, "'timeout'"),
        ({"v": 1, "cmd": "stop", "timeout": -1}, "'timeout'"),
        ({"v": 1, "cmd": "stop", "timeout": True}, "'timeout'"),
        ({"v": 1, "cmd": "scale"}, "needs n"),
        ({"v": 1, "cmd": "scale", "n": "+2"}, "'n'"),
        ({"v": 1, "cmd": "scale", "n": "lots"}, "'n'"),
        ({"v": 1, "cmd": "scale", "n": True}, "'n'"),
    ],
)
def test_invalid_requests(request_: dict[str, Any], problem: str) -> None:
    with pytest.raises(ProtocolViolation, match=problem):
        protocol.parse_request(request_)


def test_decoder_reassembles_frames_split_anywhere() -> None:
    frames: list[dict[str, Any]] = [
        {"progress": "generation 2: 1/2 workers ready"},
        {"ok": True, "result": "done"},
    ]
    stream = b"".join(protocol.encode(f) for f in frames)
    for cut in range(len(stream) + 1):
        decoder = protocol.FrameDecoder()
        got = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert got == frames
        assert decoder.pending == 0


def test_decoder_refuses_oversized_replies() -> None:
    decoder = protocol.FrameDecoder(limit=10)
    with pytest.raises(ProtocolViolation, match="exceeds"):
        decoder.feed(protocol.encode({"progress": "x" * 20}))


def test_final_frames_hold_ok() -> None:
    assert protocol.is_final({"ok": False, "error": "x"})
    assert not protocol.is_final({"progress": "x"})
    assert protocol.error_reply("bad") == {"ok": False, "error": "bad"}
