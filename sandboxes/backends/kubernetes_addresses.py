"""Where a unit's agent answers on the kubernetes backend: its pod's address, the agent's port and the unit's token
(and, beside it, the pod's checker container, with a token of its own).

One builder for both ways the backend learns a pod's address (a read of the pod for
``agent_address``, the list of all of them for ``poll_many``), and a short per-process cache:
a unit's pod is not replaced under its name while its sandbox lives, and a stale entry ages out
all the same.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils.crypto import salted_hmac

from .base import AgentAddress
from .kubernetes_manifests import AGENT_PORT, CHECKER_PORT

#: How long an address is kept in each process.
ADDRESS_TTL_S = 30.0


def agent_token(name: str) -> str:
    """The unit's agent token: an HMAC of its name under SECRET_KEY (never the same for two units)."""
    return salted_hmac("sandboxes.backends.kubernetes.agent-token", name, algorithm="sha256").hexdigest()


def checker_token(name: str) -> str:
    """The token of the unit's checker container: another HMAC, so the agent's token (which the learner's cells can
    read in their container) does not open it."""
    return salted_hmac("sandboxes.backends.kubernetes.checker-token", name, algorithm="sha256").hexdigest()


def nowhere(name: str) -> AgentAddress:
    """The address of a unit without a pod (yet): nothing answers there, so callers see AgentUnavailable
    as with a missing socket."""
    return AgentAddress(host="0.0.0.0", port=0, token=agent_token(name))


class AgentAddresses:
    """Each unit's agent address, from its pod, kept :data:`ADDRESS_TTL_S` seconds."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[float, AgentAddress]] = {}

    def cached(self, name: str) -> AgentAddress | None:
        kept = self._kept.get(name)
        return kept[1] if kept is not None and time.monotonic() - kept[0] < ADDRESS_TTL_S else None

    def learn(self, name: str, pod: Any) -> AgentAddress | None:
        """The agent's address in ``pod`` (the unit's, as the API server returned it), kept; None before it has an IP."""
        ip = pod.status.pod_ip if pod is not None else None
        if not ip:
            return None
        checker = AgentAddress(host=ip, port=CHECKER_PORT, token=checker_token(name))
        address = AgentAddress(host=ip, port=AGENT_PORT, token=agent_token(name), checker=checker)
        self._kept[name] = (time.monotonic(), address)
        return address

    def forget(self, name: str) -> None:
        self._kept.pop(name, None)
