"""The topology panel's stop/start of a cluster's broker, over the live WebSocket, when it cannot be done.

The broker tests (tests/brokers/test_kafka_cluster.py) stop and start brokers of a real cluster
through the agent; this is the page's side: the frame is handled, and a refusal comes back as a
``sandbox.node`` frame the card can show, in the page's language, without a sandbox being made.
"""

from __future__ import annotations

import pytest

from sandboxes.models import Sandbox
from sandboxes.services.nodes import NODE_BAD_REQUEST, NODE_NOT_READY
from tests.aio import run
from tests.sandboxes.test_live_stream import Live, cookie_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_broker_of_a_cluster_that_is_not_running_or_a_bad_action_is_refused_on_the_card(live_server_url, learner):
    live = Live(live_server_url, cookie_of(learner))
    frames = run(
        live.session(
            [
                {"type": "sandbox.node", "broker": "kafka-cluster", "node": 2, "action": "stop"},
                {"type": "sandbox.node", "broker": "kafka-cluster", "node": "2", "action": "explode"},
            ],
            lambda fr: len([f for f in fr if f["type"] == "sandbox.node"]) >= 2,
            timeout=15,
        )
    )
    answers = {f["action"]: f for f in frames if f["type"] == "sandbox.node"}
    assert answers["stop"]["node"] == 2 and answers["stop"]["error"] == str(NODE_NOT_READY)
    assert answers["explode"]["error"] == str(NODE_BAD_REQUEST)
    assert not Sandbox.objects.filter(user=learner).exists()  # asking to stop a broker starts nothing
