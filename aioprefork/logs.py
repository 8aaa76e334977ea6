"""Error-log and access-log setup, shared by the master and the in-process mode (workers inherit it).

The server logs on its own loggers only, each named for what it carries (LOGGERS; README
"Logging"). `configure_logging` attaches a handler to the `aioprefork` logger (the error log:
stderr or `error_log`, with pid, so lines from the master and from each worker can be told
apart) and one to `aioprefork.access` (stdout or `access_log_file`, message only: the
AccessLogger formats the whole line). Neither propagates, and the root logger is never touched:
an app that configures logging (Django's LOGGING, logging.basicConfig) keeps its own lines,
once each, and ours stay ours. `--log-config` replaces both with the user's setup.

logging.config and tomllib are imported only to read a --log-config file: the master imports this
module, and whatever the master imports is in every worker it forks.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from aioprefork.errors import ConfigError

if TYPE_CHECKING:
    from aioprefork.config.model import Config

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"

# Every logger the server writes to, and what it carries (README "Logging" lists the same).
LOGGERS: Final = {
    "aioprefork": "the parent of all below: the error log's handler sits here",
    "aioprefork.server": "master and worker lifecycle: listening, workers started, ready, "
    "exited, running, scale changes, restarts and reloads, signals, control orders",
    "aioprefork.app": "the application's failures: exceptions raised by the ASGI app (HTTP "
    "and WebSocket), lifespan startup and shutdown errors",
    "aioprefork.http": "HTTP connection errors that are not the app's (a failed write of a "
    "held response, an internal parser error); refused requests are counted, not logged",
    "aioprefork.websocket": "the WebSocket frame layer (websockets' own log), WARNING and above",
    "aioprefork.control": "the control socket that `aioprefork ctl` talks to",
    "aioprefork.metrics": "the master's metrics listener (/metrics, /server-status)",
    "aioprefork.access": "the access log: one line per request, two per WebSocket session",
}
ACCESS: Final = "aioprefork.access"
_OURS: Final = "_aioprefork_handler"  # marks the handlers configure_logging attached


def configure_logging(
    level: str = "info",
    log_config: str = "",
    access_log: bool = True,
    error_log: str = "",
    access_log_file: str = "",
) -> None:
    """(Re)configure the server's loggers; a reload calls it again with the new settings.
    ConfigError if a log file or the log config cannot be used."""
    server = logging.getLogger("aioprefork")
    access = logging.getLogger(ACCESS)
    for logger in (server, access):
        for handler in [h for h in logger.handlers if getattr(h, _OURS, False)]:
            logger.removeHandler(handler)
            handler.close()
    if log_config:
        # the user's config decides; ours step aside (the defaults a fresh process has)
        server.propagate = access.propagate = True
        server.setLevel(logging.NOTSET)
        access.setLevel(logging.NOTSET)
        _apply_log_config(log_config)
        keep_server_loggers()
        return
    error_handler = _handler(error_log, sys.stderr, "error_log", "--error-log")
    error_handler.setFormatter(logging.Formatter(ERROR_FORMAT, "%Y-%m-%d %H:%M:%S %z"))
    server.addHandler(error_handler)
    server.setLevel(level.upper())
    server.propagate = False

    access.propagate = False
    if access_log:
        access_handler = _handler(
            access_log_file, sys.stdout, "access_log_file", "--access-log-file"
        )
        access_handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(access_handler)
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.CRITICAL + 1)


def _handler(path: str, stream: TextIO, key: str, flag: str) -> logging.Handler:
    handler: logging.Handler
    if path:
        try:
            handler = logging.FileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(key, path, flag, f"cannot open it: {exc.strerror}") from None
    else:
        handler = logging.StreamHandler(stream)
    setattr(handler, _OURS, True)
    return handler


def logging_settings(config: Config) -> tuple[str, str, bool, str, str]:
    """configure_logging's arguments from a Config (a reload reconfigures when they change)."""
    return (
        config.log_level,
        config.log_config,
        config.access_log,
        config.error_log,
        config.access_log_file,
    )


def discarded_by_daemon(config: Config) -> str:
    """The one-line warning for `serve --daemon` whose logs would go to /dev/null; "" if none."""
    if not config.daemon or config.log_config:
        return ""
    lost = []
    if not config.error_log:
        lost.append(("the error log", "--error-log PATH"))
    if config.access_log and not config.access_log_file:
        lost.append(("the access log", "--access-log-file PATH"))
    if not lost:
        return ""
    what = " and ".join(name for name, _ in lost)
    fix = " and ".join(flag for _, flag in lost)
    return f"warning: --daemon detaches from the terminal and discards {what}: set {fix} (or log_config)"


def keep_server_loggers() -> None:
    """Re-enable our loggers after the app has configured logging.

    dictConfig's `disable_existing_loggers` (true unless a config says otherwise: Django's
    LOGGING, most examples) silences every logger that exists when it runs, ours included, so a
    worker whose app configured logging at import would never say "ready" or log a 500.
    """
    for name in LOGGERS:
        logging.getLogger(name).disabled = False


class JsonFormatter(logging.Formatter):
    """One JSON object per record (JSON lines) for the error log; config/logging.toml uses it.

    Fields: time (UTC, ISO 8601, milliseconds), level, logger, pid, message, and exc_info (the
    traceback as text) when there is one. A message that is itself a JSON access line (the
    access log with access_log_format = "json") is better served by a "%(message)s" formatter.
    """

    def format(self, record: logging.LogRecord) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields: dict[str, object] = {
            "time": f"{when}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exc_info"] = record.exc_text
        return json.dumps(fields, separators=(",", ":"))


def _apply_log_config(path: str) -> None:
    import logging.config
    import tomllib

    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".json":
            logging.config.dictConfig(json.loads(Path(path).read_text(encoding="utf-8")))
        elif suffix == ".toml":
            logging.config.dictConfig(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except FileNotFoundError:
        raise ConfigError("log_config", path, "--log-config", "file not found") from None
    except Exception as exc:  # logging.config raises a zoo of types for bad files
        raise ConfigError("log_config", path, "--log-config", f"invalid: {exc}") from None


_stderr_path = ""  # the file a daemon's stderr (fd 2) goes to, reopened with the logs


def redirect_stderr(path: str) -> None:
    """Point fd 2 at `path` (appending): what bypasses logging (a traceback printed by a dying
    worker, faulthandler's stacks of a hung one, warnings) lands in the error log, as Apache's
    stderr does. reopen_log_files() points it at the path again; forked workers inherit both."""
    global _stderr_path
    _stderr_path = path
    sys.stderr.flush()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError:
        return  # gone or not ours: fd 2 keeps its file (configure_logging checked the path)
    os.dup2(fd, 2)
    os.close(fd)


def reopen_log_files() -> None:
    """After logrotate: close every FileHandler so its next write reopens the path."""
    if _stderr_path:
        redirect_stderr(_stderr_path)
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in logger.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.acquire()
                    try:
                        handler.close()
                    finally:
                        handler.release()
