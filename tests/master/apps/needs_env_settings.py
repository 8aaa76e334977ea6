"""Read at import time, like a settings module (see needs_env.py)."""

from __future__ import annotations

import os

DATABASE_URL = os.environ["AIOPF_TEST_DATABASE_URL"]


def make_app() -> object:
    return None
