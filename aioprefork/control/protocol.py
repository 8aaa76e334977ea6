"""The control socket's wire format: length-prefixed JSON objects, and request validation. Pure.

    +--------+--------+--------+--------+------------------------------------+
    |  length of the body, u32 big-endian |  body: one UTF-8 JSON object        |
    +--------+--------+--------+--------+------------------------------------+

One request per connection, client -> master: {"v": 1, "cmd": "<word>", ...arguments}. The master
answers with zero or more {"progress": "..."} frames and then one final frame holding "ok"
({"ok": true, ...} or {"ok": false, "error": "..."}), then closes.

Invariants: nothing here touches a socket; every malformed input (bad length, not UTF-8, not JSON,
not an object, wrong version, unknown command, bad argument) raises ProtocolViolation with a phrase
the server sends back verbatim; a request never exceeds MAX_REQUEST bytes.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Mapping
from typing import Any, Final

from aioprefork.errors import ProtocolViolation

VERSION: Final = 1
HEADER: Final = struct.Struct(">I")
MAX_REQUEST: Final = 64 * 1024  # requests are a few dozen bytes; anything near this is hostile
MAX_REPLY: Final = 16 * 1024 * 1024  # a status snapshot of server_limit slots, with room to spare

# Command word -> the arguments it accepts (name -> validator returning the normalised value).
_SCALE: Final = re.compile(r"^(?:[+-]1|[0-9]{1,6})$")


def _text(name: str) -> Callable[[object], str]:
    """A validator of a short string argument `name` (`ctl set KEY VALUE`)."""

    def check(value: object) -> str:
        if not isinstance(value, str) or len(value) > 4096:
            raise ProtocolViolation(f"'{name}' must be a string of at most 4096 characters")
        return value

    return check


def _flag(name: str) -> Callable[[object], bool]:
    """A validator of the true/false argument `name` ('now' of stop, 'requests' of status)."""

    def check(value: object) -> bool:
        if not isinstance(value, bool):
            raise ProtocolViolation(f"'{name}' must be true or false")
        return value

    return check


def _timeout(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolViolation("'timeout' must be a number of seconds or null")
    if not math.isfinite(value) or value < 0:
        raise ProtocolViolation("'timeout' must be a finite, non-negative number")
    return float(value)


def _scale(value: object) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _SCALE.match(text):
        raise ProtocolViolation("'n' must be '+1', '-1' or a worker count")
    return text


def _slot(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1_000_000:
        raise ProtocolViolation("'slot' must be a slot number")
    return value


COMMANDS: Final[Mapping[str, Mapping[str, Any]]] = {
    "status": {"requests": _flag("requests")},
    "graceful": {},
    "restart": {},
    "stop": {"now": _flag("now"), "timeout": _timeout},
    "graceful-stop": {},
    "scale": {"n": _scale},
    "set": {"key": _text("key"), "value": _text("value")},
    "settings": {},
    "reopen-logs": {},
    "dump": {"slot": _slot},
    "upgrade": {},
}
REQUIRED: Final[Mapping[str, frozenset[str]]] = {
    "set": frozenset({"key", "value"}),
    "scale": frozenset({"n"}),
    "dump": frozenset({"slot"}),
}


def encode(obj: Mapping[str, Any]) -> bytes:
    """One frame: header + compact JSON body."""
    body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes, limit: int = MAX_REQUEST) -> int:
    """The body length announced by a 4-byte header; refuses empty and oversized frames."""
    if len(header) != HEADER.size:
        raise ProtocolViolation("truncated frame header")
    (length,) = HEADER.unpack(header)
    if length == 0:
        raise ProtocolViolation("empty frame")
    if length > limit:
        raise ProtocolViolation(f"frame of {length} bytes exceeds the {limit}-byte limit")
    return int(length)


def decode_body(body: bytes) -> dict[str, Any]:
    """The JSON object in a frame body."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ProtocolViolation("frame body is not UTF-8") from None
    except ValueError:
        raise ProtocolViolation("frame body is not JSON") from None
    if not isinstance(obj, dict):
        raise ProtocolViolation("frame body is not a JSON object")
    return obj


def parse_request(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a request and return it normalised: {"v": 1, "cmd": word, **known args}."""
    if obj.get("v") != VERSION:
        raise ProtocolViolation(
            f"unsupported protocol version {obj.get('v')!r} (expected {VERSION})"
        )
    cmd = obj.get("cmd")
    if not isinstance(cmd, str):
        raise ProtocolViolation("'cmd' must be a string")
    if cmd not in COMMANDS:
        raise ProtocolViolation(f"unknown command {cmd[:40]!r}")
    arguments = COMMANDS[cmd]
    request: dict[str, Any] = {"v": VERSION, "cmd": cmd}
    for name, value in obj.items():
        if name in ("v", "cmd"):
            continue
        if name not in arguments:
            raise ProtocolViolation(f"command {cmd!r} takes no argument {name[:40]!r}")
        request[name] = arguments[name](value)
    missing = REQUIRED.get(cmd, frozenset()) - request.keys()
    if missing:
        raise ProtocolViolation(f"command {cmd!r} needs {', '.join(sorted(missing))!s}")
    return request


def request(cmd: str, **arguments: Any) -> dict[str, Any]:
    """Build a valid request (the client side); raises ProtocolViolation like the server would."""
    return parse_request({"v": VERSION, "cmd": cmd, **arguments})


def error_reply(problem: str) -> dict[str, Any]:
    return {"ok": False, "error": problem}


def is_final(frame: Mapping[str, Any]) -> bool:
    """A reply frame that ends the exchange (holds "ok")."""
    return "ok" in frame


class FrameDecoder:
    """Sans-I/O reader of a frame stream: feed bytes, get the complete objects decoded so far."""

    def __init__(self, limit: int = MAX_REPLY) -> None:
        self._buffer = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        self._buffer += data
        frames: list[dict[str, Any]] = []
        while len(self._buffer) >= HEADER.size:
            length = frame_length(bytes(self._buffer[: HEADER.size]), self._limit)
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append(decode_body(bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered."""
        return len(self._buffer)
