"""Error-log and access-log setup, shared by the master and the in-process mode (workers inherit it).

Error log: `aioprefork.error` (and everything else) to stderr, with pid, so lines from the master and
from each worker can be told apart. Access log: `aioprefork.access` to stdout, message only (the
AccessLogger already formats the whole line). `--log-config` replaces both with the user's setup.

logging.config and tomllib are imported only to read a --log-config file: the master imports this
module, and whatever the master imports is in every worker it forks.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from aioprefork.errors import ConfigError

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def configure_logging(level: str = "info", log_config: str = "", access_log: bool = True) -> None:
    if log_config:
        _apply_log_config(log_config)
        return
    root = logging.getLogger()
    root.handlers.clear()
    error_handler = logging.StreamHandler(sys.stderr)
    error_handler.setFormatter(logging.Formatter(ERROR_FORMAT, "%Y-%m-%d %H:%M:%S %z"))
    root.addHandler(error_handler)
    root.setLevel(level.upper())

    access = logging.getLogger("aioprefork.access")
    access.handlers.clear()
    access.propagate = False
    if access_log:
        access_handler = logging.StreamHandler(sys.stdout)
        access_handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(access_handler)
        access.setLevel(logging.INFO)
    else:
        access.setLevel(logging.CRITICAL + 1)


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


def reopen_log_files() -> None:
    """After logrotate: close every FileHandler so its next write reopens the path."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            for handler in logger.handlers:
                if isinstance(handler, logging.FileHandler):
                    handler.acquire()
                    try:
                        handler.close()
                    finally:
                        handler.release()
