"""The request target (RFC 9112 section 3.2) -> the ASGI scope's path, raw_path and query_string.

Internal and pure: never touches a socket, compiled with the hot path (setup.py HOT_PATH). The
protocol hands `split_target()` the target and method as llhttp parsed them and gets back

    (path, raw_path, query_string, authority)

or an errors.RequestRejected that already knows its status and counter label:

* origin-form `/p?q` (nearly every request): split at the first `?`; `path` is percent-decoded
  (RFC 3986 section 2.1, invalid UTF-8 replaced as uvicorn does), `raw_path` stays as sent.
* asterisk-form `*` for OPTIONS only (section 3.2.4).
* authority-form (CONNECT, section 3.2.3): 501, tunnels are not served.
* absolute-form `http://host:port/p?q` (section 3.2.2): its authority is returned, and wins
  over the Host field (framing.check_head); userinfo (RFC 9110 section 4.2.4) is refused.
* a fragment (`#`) is never sent by a client (section 3.2.1): refused in every form.

A non-empty `root_path` (the `root_path` setting) is prefixed to both path and raw_path, as the
ASGI spec asks of a server mounted under a prefix. Where the work goes (and why the origin-form
split is done on a str): docs/architecture.md, "What is compiled and why".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import httptools

from aioprefork.errors import RequestRejected

__all__ = ["split_target"]


def split_target(
    url: bytes, method: bytes, root_path: str
) -> tuple[str, bytes, bytes, bytes | None]:
    """(path, raw_path, query_string, authority or None) of one request target; RequestRejected."""
    authority: bytes | None = None
    path: str | None = None  # the decoded path, when the split below already has it
    if url.startswith(b"/"):
        try:
            # split as str: str.find is compiled inline, bytes.find is a method call
            target = url.decode("ascii")
        except UnicodeDecodeError:
            target = ""  # raw non-ASCII (strict llhttp refuses it first): split as bytes
        if "#" in target or (not target and b"#" in url):
            # a fragment is never sent (RFC 9112 section 3.2.1): not ours to pass on
            raise RequestRejected("invalid request target", reason="target")
        if target:
            query = target.find("?")
            if query < 0:
                raw_path, query_string, path = url, b"", target
            else:
                raw_path, query_string = url[:query], url[query + 1 :]
                path = target[:query]
            if "%" in path:
                path = None  # percent-escapes: decoded below
        else:
            query = url.find(b"?")
            raw_path = url if query < 0 else url[:query]
            query_string = b"" if query < 0 else url[query + 1 :]
    elif url == b"*" and method == b"OPTIONS":
        raw_path, query_string = url, b""
    elif method == b"CONNECT":  # authority-form: tunnels are not served
        raise RequestRejected("CONNECT is not supported", status=501, reason="method")
    else:
        raw_path, query_string, authority = _absolute(url)
    if path is None:
        # (not `b"%" in raw_path`: bytes.__contains__ tries the operand as an int first, and
        # pays for a TypeError on every request)
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            path = "%"  # raw UTF-8 in the target: decoded as percent-escapes are
        if "%" in path:
            path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    if root_path:
        path = root_path + path
        raw_path = root_path.encode() + raw_path
    return path, raw_path, query_string, authority


def _absolute(url: bytes) -> tuple[bytes, bytes, bytes]:
    """Split an absolute-form target (RFC 9112 section 3.2.2); its authority wins."""
    try:
        # Any: its stub types port as int, but it is None when absent (and mypyc checks).
        parsed: Any = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise RequestRejected("invalid request target", reason="target") from None
    if not parsed.schema or not parsed.host:
        raise RequestRejected("invalid request target", reason="target")
    start = url.find(b"://") + 3
    end = len(url)
    for separator in (b"/", b"?"):
        at = url.find(separator, start)
        if 0 <= at < end:
            end = at
    if b"@" in url[start:end] or b"#" in url:
        # RFC 9110 section 4.2.4 (userinfo is an error), 9112 section 3.2 (no fragment)
        raise RequestRejected("invalid request target", reason="target")
    host: bytes = parsed.host
    if b":" in host:
        host = b"[%s]" % host  # an IPv6 literal: parse_url drops its brackets
    authority = host if parsed.port is None else b"%s:%d" % (host, parsed.port)
    return parsed.path or b"/", parsed.query or b"", authority
