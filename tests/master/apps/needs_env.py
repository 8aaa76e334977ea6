"""An app whose settings module needs an environment variable that is not set: a KeyError raised
two modules deep at import time, the way a first deployment usually fails."""

from __future__ import annotations

import needs_env_settings  # type: ignore[import-not-found]  # (on --app-dir at run time)

app = needs_env_settings.make_app()
