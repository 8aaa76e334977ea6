"""Sans-I/O codec for the control channel: messages <-> length-prefixed, versioned frames.

Both ends of every master/worker socketpair use this module; only channel/endpoint.py touches a
socket. A frame is a fixed 6-byte header followed by a JSON object holding the message's fields:

     0               1               2                               6
    +---------------+---------------+-------------------------------+------------------------+
    | magic|version | type          | length (u32, big-endian)      | payload: JSON object   |
    | 0xA0 | 0x01   | MsgType       | bytes of payload, <= MAX_FRAME| {"field": value, ...}  |
    +---------------+---------------+-------------------------------+------------------------+

Invariants: the decoder never executes or imports anything a peer names (no pickle); every
field is checked against the dataclass's declared type (tuples come back as tuples); a frame
that breaks any rule raises errors.ProtocolViolation and the decoder refuses further input, so
a confused peer is dropped rather than half-understood.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import types
import typing
from typing import Any, Final

from aioprefork.channel.messages import MESSAGE_TYPES, PROTOCOL_VERSION, Message, MsgType
from aioprefork.errors import ProtocolViolation

MAGIC: Final = 0xA0  # high nibble: garbage on the channel is caught by the first byte
HEADER: Final = struct.Struct(">BBI")
# A Status frame is ~1 KiB; a Fatal message carries a traceback. 256 KiB bounds memory per peer.
MAX_FRAME: Final = 256 * 1024
_LEAD: Final = MAGIC | PROTOCOL_VERSION


def encode(msg: Message) -> bytes:
    """One frame for `msg`; raises ProtocolViolation if its payload exceeds MAX_FRAME."""
    fields = {f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)}
    payload = json.dumps(fields, separators=(",", ":")).encode()
    if len(payload) > MAX_FRAME:
        raise ProtocolViolation(f"{type(msg).__name__} frame of {len(payload)} bytes > MAX_FRAME")
    return HEADER.pack(_LEAD, msg.TYPE, len(payload)) + payload


class FrameDecoder:
    """Feed bytes as they arrive; get back every message completed so far, in order."""

    __slots__ = ("_broken", "_buffer")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._broken = False

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a frame (non-zero at EOF means a truncated frame)."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        if self._broken:
            raise ProtocolViolation("decoder already failed on an earlier frame")
        self._buffer += data
        messages: list[Message] = []
        try:
            while len(self._buffer) >= HEADER.size:
                lead, kind, length = HEADER.unpack_from(self._buffer)
                _check_header(lead, kind, length)
                end = HEADER.size + length
                if len(self._buffer) < end:
                    break
                payload = bytes(self._buffer[HEADER.size : end])
                del self._buffer[:end]
                messages.append(decode_payload(MsgType(kind), payload))
        except ProtocolViolation:
            self._broken = True
            raise
        return messages


def _check_header(lead: int, kind: int, length: int) -> None:
    if lead & 0xF0 != MAGIC:
        raise ProtocolViolation(f"bad frame magic 0x{lead:02x}")
    if lead & 0x0F != PROTOCOL_VERSION:
        raise ProtocolViolation(f"unsupported channel version {lead & 0x0F}")
    if kind not in MsgType._value2member_map_:
        raise ProtocolViolation(f"unknown message type {kind}")
    if length > MAX_FRAME:
        raise ProtocolViolation(f"frame of {length} bytes > MAX_FRAME")


def decode_payload(kind: MsgType, payload: bytes) -> Message:
    """The message of type `kind` from its JSON payload, every field type-checked."""
    cls = MESSAGE_TYPES[kind]
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolViolation(f"{cls.__name__}: payload is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ProtocolViolation(f"{cls.__name__}: payload is not an object")
    hints = _hints(cls)
    unknown = raw.keys() - hints.keys()
    if unknown:
        raise ProtocolViolation(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    values = {name: _coerce(raw[name], hints[name], f"{cls.__name__}.{name}") for name in raw}
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ProtocolViolation(f"{cls.__name__}: {exc}") from None


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """Declared field types (resolved once per class; annotations are strings here)."""
    if cls not in _HINTS:
        resolved = typing.get_type_hints(cls)
        _HINTS[cls] = {f.name: resolved[f.name] for f in dataclasses.fields(cls)}
    return _HINTS[cls]


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """`value` as type `hint` (bool, int, float, str, tuple[X, ...], tuple[A, B]), else ProtocolViolation."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list):
            raise ProtocolViolation(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise ProtocolViolation(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args, strict=True))
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, where)
            except ProtocolViolation:
                continue
        raise ProtocolViolation(f"{where}: {value!r} matches no type of {hint}")
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is type(None):
        ok = value is None
    else:  # pragma: no cover - a message declared a field type this codec does not know
        raise ProtocolViolation(f"{where}: unsupported field type {hint}")
    if not ok:
        raise ProtocolViolation(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
    return value
