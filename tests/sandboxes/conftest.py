"""Sandbox fixtures: every unit a test starts is removed at the end, even after a failure."""

from __future__ import annotations

import pytest

from sandboxes.backends import get_backend


@pytest.fixture
def units_cleanup():
    yield
    backend = get_backend()
    for name in backend.list_units():
        backend.stop(name)
