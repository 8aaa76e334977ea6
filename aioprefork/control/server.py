"""The master's control socket: a 0600 Unix socket that hands `ctl` requests to the arbiter.

One request per connection. The server reads one frame (bounded in size and in time), validates it
with control/protocol.py and streams every dict the handler yields back as one frame. The first
frame holding "ok" is the last: the handler is closed right after it, so it must have done (or
scheduled) its work before yielding it. Invariants:

* Bad input (garbage, oversized length, non-JSON, unknown command) gets {"ok": false, "error": ...}
  and a close; it never raises into the master's loop.
* A client that goes away mid-stream does not cancel the command: the handler runs to its end and
  the remaining frames are dropped. A client that never sends is dropped after `read_timeout`.
* The path is created mode 0600 (umask held while binding; the master is single-threaded); a stale
  socket is unlinked first, but a live one (a master answers on it) is refused, and so is a path
  that is not a socket. `close()` unlinks the path only if it is still our socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Final

from aioprefork.control import protocol
from aioprefork.errors import BindError, ProtocolViolation

log = logging.getLogger("aioprefork.control")

Handler = Callable[[Mapping[str, Any]], AsyncIterator[dict[str, Any]]]

READ_TIMEOUT: Final = 5.0  # a request is one small frame; a silent client is dropped after this
WRITE_TIMEOUT: Final = 10.0  # a client that stops reading replies is dropped after this
MAX_CLIENTS: Final = 32  # concurrent connections; more get an error reply ("busy")
MODE: Final = 0o600


def claim_path(path: str) -> None:
    """Make `path` free to bind: unlink a stale socket, refuse a live one or a non-socket."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(f"control socket path {path} exists and is not a socket; remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        pass  # nobody listens: a stale socket left by a master that died
    except OSError as exc:
        raise BindError(f"control socket {path}: cannot probe it ({exc.strerror})") from None
    else:
        raise BindError(f"control socket {path} is in use: another master is running")
    finally:
        probe.close()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def bind_socket(path: str, owner: tuple[int, int] | None = None) -> socket.socket:
    """A listening Unix socket at `path`, mode 0600 from the start, optionally chowned."""
    claim_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)  # no window where the path is group/world-connectable
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        raise BindError(f"control socket {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    try:
        os.chmod(path, MODE)
        if owner is not None:
            os.chown(path, *owner)
        sock.listen(16)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise BindError(f"control socket {path}: {exc.strerror}") from None
    return sock


class ControlServer:
    """A bound control socket serving `handler`; `close()` stops it and unlinks the path."""

    def __init__(
        self, path: str, handler: Handler, sock: socket.socket, *, read_timeout: float
    ) -> None:
        self.path = path
        self._handler = handler
        self._read_timeout = read_timeout
        self._inode = os.stat(path).st_ino
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.AbstractServer | None = None
        self._sock = sock

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._on_client, sock=self._sock)

    def stop_listening(self) -> None:
        """Accept no more connections and unlink the path; those in flight go on (ctl upgrade
        hands the path to a new master while its own client waits for the outcome)."""
        if self._server is not None:
            self._server.close()
        self._unlink()

    async def close(self, grace: float = 0.5) -> None:
        """Stop accepting, unlink the path, give in-flight replies `grace` seconds, cancel the rest."""
        if self._server is not None:
            self._server.close()
        self._unlink()
        me = asyncio.current_task()
        pending = {t for t in self._tasks if t is not me}
        if pending and grace > 0:
            await asyncio.wait(pending, timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> ControlServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _unlink(self) -> None:
        """Remove the path unless someone else's socket has replaced ours."""
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if len(self._tasks) > MAX_CLIENTS:
                await _send(writer, protocol.error_reply("busy: too many control connections"))
            else:
                await self._serve_one(reader, writer)
        except Exception:  # the master must survive any client; log and drop this one
            log.exception("control connection failed")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(_read_request(reader), self._read_timeout)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return  # silent or vanished client: nothing to answer
        except ProtocolViolation as exc:
            await _send(writer, protocol.error_reply(f"bad request: {exc}"))
            return
        log.debug("control request %s", request)
        connected = True
        frames = self._handler(request)
        try:
            async for frame in frames:
                if connected:
                    connected = await _send(writer, frame)
                if protocol.is_final(frame):
                    break
            else:
                if connected:
                    await _send(writer, protocol.error_reply("internal error: no final reply"))
        except Exception as exc:
            log.exception("control command %r failed", request.get("cmd"))
            if connected:
                await _send(writer, protocol.error_reply(f"internal error: {exc}"))
        finally:
            aclose = getattr(frames, "aclose", None)
            if aclose is not None:
                await aclose()


async def _read_request(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await reader.readexactly(protocol.HEADER.size)
    length = protocol.frame_length(header, protocol.MAX_REQUEST)
    body = await reader.readexactly(length)
    return protocol.parse_request(protocol.decode_body(body))


async def _send(writer: asyncio.StreamWriter, frame: Mapping[str, Any]) -> bool:
    """Write one frame; False when the client is gone (the caller stops writing, not working)."""
    try:
        data = protocol.encode(frame)
    except (TypeError, ValueError) as exc:  # a handler yielded something JSON cannot carry
        data = protocol.encode(protocol.error_reply(f"internal error: unencodable reply ({exc})"))
    if writer.is_closing():
        return False
    try:
        writer.write(data)
        await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
    except (ConnectionError, TimeoutError):
        return False
    except OSError as exc:
        if exc.errno in (errno.EPIPE, errno.ECONNRESET):
            return False
        raise
    return True


async def open_control_server(
    path: str,
    handler: Handler,
    *,
    owner: tuple[int, int] | None = None,
    read_timeout: float = READ_TIMEOUT,
) -> ControlServer:
    """Bind `path` (0600, optionally chowned to `owner` = (uid, gid)) and serve `handler` on it.

    Raises BindError (one line) when the path holds a live master's socket or is not a socket.
    The result is also an async context manager that closes it.
    """
    sock = bind_socket(path, owner)
    server = ControlServer(path, handler, sock, read_timeout=read_timeout)
    try:
        await server.start()
    except BaseException:
        sock.close()
        server._unlink()
        raise
    return server
