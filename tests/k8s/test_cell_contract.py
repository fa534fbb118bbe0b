"""What a learner's cell sees, on the Kubernetes backend: the same contract as on process and Docker.

The cases are tests/sandboxes/test_cell_contract.py's own, imported and run here against a NATS pod in
the lab through the Kubernetes backend's worker: a file in /tmp is there for the next cell and the
terminal until a reset; HOME and the working folder are /tmp, kcat and the broker's tools are on the
PATH, /tmp ends in ENOSPC at 64 MiB (a tmpfs, as Docker's; an emptyDir on disk got the pod evicted
instead); runs fork from the template, and what one leaves behind (a background child, one in a session
of its own) is gone before the next, although a pod has one account for agent, broker and cells.
"""

from __future__ import annotations

import pytest

from tests.k8s.lab import Lab, lab_images
from tests.sandboxes.test_cell_contract import (
    test_a_cell_has_home_in_tmp_the_tools_on_its_path_and_a_bounded_tmp,
    test_a_file_in_tmp_is_there_for_the_next_cell_and_the_terminal_until_a_reset,
    test_runs_fork_from_a_template_with_the_client_loaded_and_leave_nothing_to_the_next,
)

pytestmark = [pytest.mark.integration, pytest.mark.k8s, pytest.mark.django_db(transaction=True)]

__all__ = [
    "test_a_cell_has_home_in_tmp_the_tools_on_its_path_and_a_bounded_tmp",
    "test_a_file_in_tmp_is_there_for_the_next_cell_and_the_terminal_until_a_reset",
    "test_runs_fork_from_a_template_with_the_client_loaded_and_leave_nothing_to_the_next",
]


@pytest.fixture(scope="module")
def images(lab: Lab) -> dict[str, str]:
    try:
        return lab_images(lab, ["nats"])
    except RuntimeError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def backend(k8s_worker, k8s_backend) -> str:
    """The contract's cases run where this fixture says: on the Kubernetes backend, through its worker."""
    return "kubernetes"
