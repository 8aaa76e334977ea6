"""An app that configures logging at import, as a Django project's LOGGING does.

Its own "myapp" logger gets a handler and keeps propagating (Django's pattern for "django"); the
root logger is left alone; `disable_existing_loggers` is left at dictConfig's default (true):
every logger that exists when this module is imported is disabled.

/      logs "request /" on myapp at INFO, answers "ok"
/boom  raises ValueError("boom") (the server logs it on aioprefork.app)
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

logging.config.dictConfig(
    {
        "version": 1,
        "formatters": {"app": {"format": "APP %(name)s %(levelname)s %(message)s"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "app",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"myapp": {"handlers": ["console"], "level": "INFO"}},
    }
)
log = logging.getLogger("myapp")
log.info("imported")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    log.info("request %s", scope["path"])
    logging.getLogger("myapp.views").warning("view warning %s", scope["path"])
    if scope["path"] == "/boom":
        raise ValueError("boom")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
