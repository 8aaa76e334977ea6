"""channel/codec.py: frames round-trip every message; every malformed frame is a ProtocolViolation."""

from __future__ import annotations

import json
import math
import struct
import typing
from dataclasses import fields
from typing import Any

import pytest

from aioprefork.channel.codec import HEADER, MAGIC, MAX_FRAME, FrameDecoder, encode
from aioprefork.channel.messages import (
    MESSAGE_TYPES,
    PROTOCOL_VERSION,
    TO_MASTER,
    TO_WORKER,
    Fatal,
    GracefulStop,
    Message,
    MsgType,
    Ready,
    ReopenLogs,
    Retire,
    Status,
    Stop,
)
from aioprefork.errors import ProtocolViolation

MESSAGES: list[Message] = [
    Ready(pid=4242, slot=3, gen=7),
    Status(accepting=False),
    Status(
        accepting=True,
        reading=1,
        active=2,
        keepalive=3,
        closing=4,
        upgraded=5,
        accepted_total=10,
        requests_total=20,
        response_bytes_total=3000,
        requests=(("GET", "2xx", 17), ("POST", "5xx", 3)),
        rejected=(("framing", 2),),
        duration_buckets=tuple(range(14)),
        duration_sum=1.25,
        loop_lag=0.003,
        rss=50_000_000,
    ),
    Retire(reason="max_requests"),
    Fatal(code=3, message="cannot import 'nope': No module named 'nope'\nline two ünïcode"),
    GracefulStop(deadline=1_700_000_000.5),
    GracefulStop(deadline=math.inf),
    Stop(),
    ReopenLogs(),
]


def example(hint: Any, seed: int) -> Any:
    """A value of the declared field type `hint` (what the codec must carry), varied by seed."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple(example(args[0], seed + i) for i in range(3))
    if origin is tuple:
        return tuple(example(arg, seed + i) for i, arg in enumerate(args))
    samples: dict[Any, Any] = {
        bool: seed % 2 == 0,
        int: 1000 + seed,
        float: seed + 0.25,
        str: f"text {seed} ü\n",
    }
    return samples[hint]


def generated(cls: type[Message], seed: int) -> Message:
    """`cls` with every field set to a non-default example, from its type hints alone."""
    hints = typing.get_type_hints(cls)
    values = {f.name: example(hints[f.name], seed + i) for i, f in enumerate(fields(cls))}
    return cls(**values)


ALL_TYPES = (*TO_MASTER, *TO_WORKER)


def test_the_unions_are_the_registry() -> None:
    """Every message travels one way, and the codec knows each by its MsgType."""
    assert not set(TO_MASTER) & set(TO_WORKER)
    assert set(MESSAGE_TYPES.values()) == set(ALL_TYPES) == set(typing.get_args(Message))
    assert {cls.TYPE for cls in ALL_TYPES} == set(MsgType)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("seed", [0, 1])
def test_round_trip_generated_from_the_union(cls: type[Message], seed: int) -> None:
    msg = generated(cls, seed)
    assert FrameDecoder().feed(encode(msg)) == [msg]


def frame(kind: int, payload: bytes, lead: int = MAGIC | PROTOCOL_VERSION) -> bytes:
    return HEADER.pack(lead, kind, len(payload)) + payload


@pytest.mark.parametrize("msg", MESSAGES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: Message) -> None:
    decoded = FrameDecoder().feed(encode(msg))
    assert decoded == [msg]
    assert type(decoded[0]) is type(msg)


def test_tuples_come_back_as_tuples() -> None:
    (status,) = FrameDecoder().feed(encode(MESSAGES[2]))
    assert isinstance(status, Status)
    assert isinstance(status.requests, tuple)
    assert all(isinstance(row, tuple) for row in status.requests)
    assert isinstance(status.duration_buckets, tuple)


def test_header_layout() -> None:
    data = encode(Stop())
    lead, kind, length = struct.unpack(">BBI", data[:6])
    assert (lead, kind, length) == (MAGIC | PROTOCOL_VERSION, MsgType.STOP, len(data) - 6)
    assert json.loads(data[6:]) == {}


def test_byte_at_a_time_and_many_per_chunk() -> None:
    stream = b"".join(encode(m) for m in MESSAGES)
    decoder = FrameDecoder()
    out: list[Message] = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == MESSAGES
    assert FrameDecoder().feed(stream) == MESSAGES


def test_partial_frame_is_pending() -> None:
    data = encode(Ready(pid=1, slot=0, gen=1))
    decoder = FrameDecoder()
    assert decoder.feed(data[:-1]) == []
    assert decoder.pending == len(data) - 1
    assert decoder.feed(data[-1:]) == [Ready(pid=1, slot=0, gen=1)]
    assert decoder.pending == 0


BAD_FRAMES = {
    "bad magic": frame(MsgType.STOP, b"{}", lead=0x50 | PROTOCOL_VERSION),
    "bad version": frame(MsgType.STOP, b"{}", lead=MAGIC | 0x0F),
    "unknown type": frame(99, b"{}"),
    "length over MAX_FRAME": HEADER.pack(MAGIC | PROTOCOL_VERSION, MsgType.STOP, MAX_FRAME + 1),
    "not json": frame(MsgType.STOP, b"{nope"),
    "not utf-8": frame(MsgType.STOP, b"\xff\xfe"),
    "not an object": frame(MsgType.STOP, b"[1, 2]"),
    "unknown field": frame(MsgType.STOP, b'{"now": true}'),
    "missing field": frame(MsgType.READY, b'{"pid": 1, "slot": 0}'),
    "bool for int": frame(MsgType.READY, b'{"pid": true, "slot": 0, "gen": 1}'),
    "str for int": frame(MsgType.READY, b'{"pid": "1", "slot": 0, "gen": 1}'),
    "int for bool": frame(MsgType.STATUS, b'{"accepting": 1}'),
    "str for float": frame(MsgType.GRACEFUL_STOP, b'{"deadline": "soon"}'),
    "int for str": frame(MsgType.RETIRE, b'{"reason": 5}'),
    "object for tuple": frame(MsgType.STATUS, b'{"accepting": true, "rejected": {"a": 1}}'),
    "short row": frame(MsgType.STATUS, b'{"accepting": true, "requests": [["GET", "2xx"]]}'),
    "bad row item": frame(MsgType.STATUS, b'{"accepting": true, "requests": [["GET", 2, 1]]}'),
}


@pytest.mark.parametrize("data", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_bad_frames_raise(data: bytes) -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolViolation):
        decoder.feed(data)
    with pytest.raises(ProtocolViolation, match="already failed"):
        decoder.feed(encode(Stop()))


def test_good_frames_before_a_bad_one_are_not_returned_twice() -> None:
    decoder = FrameDecoder()
    with pytest.raises(ProtocolViolation):
        decoder.feed(encode(Stop()) + BAD_FRAMES["bad magic"])


def test_int_is_accepted_for_float() -> None:
    (msg,) = FrameDecoder().feed(frame(MsgType.GRACEFUL_STOP, b'{"deadline": 5}'))
    assert msg == GracefulStop(deadline=5.0)
    assert isinstance(msg, GracefulStop) and isinstance(msg.deadline, float)


def test_encode_refuses_oversized_payload() -> None:
    with pytest.raises(ProtocolViolation, match="MAX_FRAME"):
        encode(Fatal(code=3, message="x" * (MAX_FRAME + 1)))
