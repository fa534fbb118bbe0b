"""Stopping and starting one broker of a learner's cluster sandbox (the topology panel's buttons)."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.utils.translation import gettext_lazy

from sandboxes import agent_client, selectors

from .lifecycle import SandboxError
from .provisioning import sandbox_address

NODE_ACTIONS = ("stop", "start")
NODE_NOT_READY = gettext_lazy("Песочница ещё не готова: брокеры можно останавливать и запускать, когда она запущена.")
NODE_BAD_REQUEST = gettext_lazy("Можно только остановить (stop) или запустить (start) брокер с номером узла.")
NODE_REFUSED = gettext_lazy("Брокер {node}: {reason}")


async def sandbox_node_action(*, user_id: int, broker: str, node: object, action: str) -> dict[str, Any]:
    """Stop or start broker ``node`` of the user's own ready sandbox of ``broker``; return its brokers' states.

    ``node`` is what the page sent (anything JSON holds): only an int names a node.
    Answers once the broker has stopped (a clean stop hands its leaderships over first) or
    its process has started. Raises :class:`SandboxError` for a sandbox that is not ready,
    a bad request, or a refusal of the unit (a kind with one node; the last running broker).
    """
    if action not in NODE_ACTIONS or not isinstance(node, int) or isinstance(node, bool):
        raise SandboxError(NODE_BAD_REQUEST)
    sandbox = await database_sync_to_async(selectors.sandbox_ready_of)(user_id=user_id, broker=broker)
    if sandbox is None:
        raise SandboxError(NODE_NOT_READY)
    address = await sandbox_address(sandbox=sandbox)
    reply = await agent_client.node(address, node=node, action=action)
    if reply.get("type") == "error":
        raise SandboxError(NODE_REFUSED.format(node=node, reason=reply.get("message") or reply.get("code")))
    return {"brokers": reply.get("brokers") or []}
