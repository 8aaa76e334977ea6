"""aioprefork: a prefork ASGI server (Apache's master/worker pool, uvloop + httptools workers).

Public surface: `run`, `Config`, `__version__`. Everything else is internal.
"""

from __future__ import annotations

from aioprefork.config.model import Config

__version__ = "0.1.0"
__all__ = ["Config", "__version__"]
