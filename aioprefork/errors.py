"""The exception tree, and the exit codes the master and the CLI leave with.

    AiopreforkError                 base of everything raised on purpose
    +-- UserError                   something the operator can fix; printed as ONE line, no traceback
    |   +-- ConfigError             a setting has a bad value (names key, value and source)
    |   +-- AppLoadError            "module:attr" cannot be imported or is not callable
    |   +-- BindError               a listener cannot be bound (port in use, bad path)
    |   +-- ControlError            `ctl` could not reach or talk to the master
    +-- BootError                   a worker could not start (import error, lifespan startup failed)
    +-- RequestRejected             a client sent something we refuse; knows its status and reason
    +-- ProtocolViolation           a peer on the control channel broke the frame format

Request rejections carry `status` (the answer) and `reason` (the scoreboard/metrics label), so the
protocol maps every hostile-input class to a response, a close and a counter in one place.
"""

from __future__ import annotations

from typing import Final

# Exit codes (gunicorn's WORKER_BOOT_ERROR = 3 lineage).
EXIT_OK: Final = 0
EXIT_FAILURE: Final = 1
EXIT_USAGE: Final = 2  # bad config, port in use, unknown app: fixed by the operator
EXIT_BOOT: Final = 3  # no worker could boot: the app or its lifespan is broken


class AiopreforkError(Exception):
    """Base class of every error aioprefork raises on purpose."""


class UserError(AiopreforkError):
    """An error the operator caused and can fix; the CLI prints `str(err)` and exits EXIT_USAGE."""

    exit_code: int = EXIT_USAGE


class ConfigError(UserError):
    """A setting failed validation: the message names the key, the value and where it came from."""

    def __init__(self, key: str, value: object, source: str, problem: str) -> None:
        self.key, self.value, self.source, self.problem = key, value, source, problem
        super().__init__(f"config error: {key} = {value!r} (from {source}): {problem}")


class AppLoadError(UserError):
    """The application path could not be imported or does not name an ASGI callable.

    `detail` is the traceback of an error raised inside the application's own code (empty when
    the one line says it all, e.g. a misspelt module): shown once, above the one line.
    """

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class BindError(UserError):
    """A listener could not be created; the message says which address and why."""


class ControlError(UserError):
    """`ctl` failed to reach the master or the master refused the command."""


class BootError(AiopreforkError):
    """A worker failed before it could serve: import error or lifespan startup failure.

    `detail` is what the app said beyond the one line (its traceback): logged once per
    generation by the master, not once per worker.
    """

    exit_code: int = EXIT_BOOT

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ProtocolViolation(AiopreforkError):
    """A control-channel peer sent a frame that does not decode."""


class ClientDisconnected(OSError):
    """send() after the client went away (ASGI spec 2.4: a server-specific OSError)."""


class WriteTimeout(ConnectionError):
    """The client did not read what we sent within write_timeout."""


class RequestRejected(AiopreforkError):
    """A client request we refuse: answered with `status`, then the connection is closed."""

    status: int = 400
    reason: str = "bad_request"

    def __init__(self, detail: str = "", *, status: int | None = None, reason: str | None = None):
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason
        self.detail = detail or self.reason
        super().__init__(self.detail)


class RequestLineTooLong(RequestRejected):
    status, reason = 414, "uri_too_long"


class HeadersTooLarge(RequestRejected):
    status, reason = 431, "headers_too_large"


class BodyTooLarge(RequestRejected):
    status, reason = 413, "body_too_large"


class SmugglingAttempt(RequestRejected):
    """Ambiguous message framing (RFC 9112 section 6.3): CL+TE, bad CL, bad TE."""

    status, reason = 400, "framing"


class BadHost(RequestRejected):
    status, reason = 400, "host"
