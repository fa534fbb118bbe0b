"""The lab for every k8s test module: up once per session, down at its end whatever happened.

test_lab.py's last tests take it down themselves, and run after the other modules (by name).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.k8s.lab import Lab, host_state, lab_script, read_env, tail


@pytest.fixture(scope="session")
def host_before() -> dict[str, str | bool]:
    return host_state()


@pytest.fixture(scope="session")
def lab(host_before) -> Iterator[Lab]:
    """The lab, up for the session and down at its end whatever happened."""
    try:
        result = lab_script("up", timeout=2700)
        if result.returncode != 0:
            pytest.fail(f"scripts/k8s-lab.sh up failed (exit {result.returncode}):\n{tail(result)}", pytrace=False)
        yield Lab(read_env())
    finally:
        lab_script("down", timeout=300)
