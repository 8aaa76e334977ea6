"""An app module that cannot be imported: the master must halt with exit 3, not respawn."""

from __future__ import annotations

import this_module_does_not_exist  # noqa: F401

app = None
