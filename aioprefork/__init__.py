"""aioprefork: a prefork ASGI server (Apache's master/worker pool, uvloop + httptools workers).

Public surface: `Config` (the frozen settings, config/model.py) and `__version__`. Serving is the
command line (`aioprefork serve`, cli/app.py) or `python -m aioprefork`; there is no `run()` to
call from Python. Everything else is internal: docs/architecture.md says what each package does.
"""

from __future__ import annotations

from aioprefork.config.model import Config

__version__ = "0.1.0"
__all__ = ["Config", "__version__"]
