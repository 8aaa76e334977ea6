"""TLS test fixtures: one throwaway PKI per test session (see certs.py)."""

from __future__ import annotations

import pytest

from .certs import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
