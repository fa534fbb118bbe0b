"""Sandboxes that keep their state: a stop keeps the broker's data, the next start resumes it, reset and discard do not.

Real brokers through the real worker: the learner's stop and start are the services the page
calls, the stop runs in the Celery worker, and the cells run in the units.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from sandboxes.backends import get_backend
from sandboxes.models import KeptState, Sandbox, State
from sandboxes.payloads import kept_payload
from sandboxes.services import actions, kept, lifecycle, pool, provisioning, reconcile
from sandboxes.services.lifecycle import SandboxError
from tests.aio import run
from tests.sandboxes.test_lifecycle import provision, run_cell
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

KAFKA_PRODUCE = """
import os
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
servers = os.environ["BOOTSTRAP_SERVERS"]
p = KafkaProducer(bootstrap_servers=servers)
for i in range(3):
    p.send("kept-orders", f"order-{i}".encode()).get(timeout=30)
p.close()
tp = TopicPartition("kept-orders", 0)
c = KafkaConsumer(bootstrap_servers=servers, group_id="billing", enable_auto_commit=False, auto_offset_reset="earliest")
c.assign([tp])
got = []
while len(got) < 2:
    for records in c.poll(timeout_ms=1000, max_records=2 - len(got)).values():
        got += [r.value.decode() for r in records]
c.commit()
print("COMMITTED", c.committed(tp))
c.close()
"""

KAFKA_READ = """
import json, os
from kafka import KafkaConsumer, TopicPartition
servers = os.environ["BOOTSTRAP_SERVERS"]
c = KafkaConsumer(bootstrap_servers=servers)
topics = sorted(t for t in c.topics() if not t.startswith("__"))
values = []
if "kept-orders" in topics:
    tp = TopicPartition("kept-orders", 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    end = c.end_offsets([tp])[tp]
    while c.position(tp) < end:
        for records in c.poll(timeout_ms=1000).values():
            values += [r.value.decode() for r in records]
    g = KafkaConsumer(bootstrap_servers=servers, group_id="billing", enable_auto_commit=False)
    committed = g.committed(tp)
    g.close()
else:
    committed = None
c.close()
print(json.dumps({"topics": topics, "values": values, "committed": committed}))
"""

RABBIT_PUBLISH = """
import os, pika
conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
ch = conn.channel()
ch.confirm_delivery()
ch.queue_declare("kept-orders", durable=True)
for i in range(2):
    ch.basic_publish("", "kept-orders", f"order-{i}".encode(), pika.BasicProperties(delivery_mode=2))
print("DEPTH", ch.queue_declare("kept-orders", durable=True, passive=True).method.message_count)
conn.close()
"""

RABBIT_READ = """
import json, os, pika
conn = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
ch = conn.channel()
try:
    ch.queue_declare("kept-orders", passive=True)
except pika.exceptions.ChannelClosedByBroker:
    print(json.dumps(None))
else:
    got = []
    while True:
        method, props, body = ch.basic_get("kept-orders", auto_ack=True)
        if method is None:
            break
        got.append(body.decode())
    print(json.dumps(got))
    conn.close()
"""

NATS_PUBLISH = """
import asyncio, os, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    js = nc.jetstream()
    await js.add_stream(name="KEPT", subjects=["kept.>"])
    for i in range(3):
        await js.publish("kept.orders", f"order-{i}".encode())
    print("MSGS", (await js.stream_info("KEPT")).state.messages)
    await nc.close()
asyncio.run(main())
"""

NATS_READ = """
import asyncio, json, os, nats
from nats.js.errors import NotFoundError
async def main():
    nc = await nats.connect(os.environ["NATS_URL"])
    js = nc.jetstream()
    try:
        info = await js.stream_info("KEPT")
    except NotFoundError:
        print(json.dumps(None))
    else:
        msg = await js.get_msg("KEPT", 1)
        print(json.dumps([info.state.messages, msg.data.decode()]))
    await nc.close()
asyncio.run(main())
"""


@pytest.fixture
def kept_cleanup():
    """Kept data of this run is deleted at the end, whatever the test left."""
    yield
    backend = get_backend()
    for key in backend.kept_keys():
        backend.discard_kept(key)


def cell_json(sandbox: Sandbox, code: str):
    result, output = run_cell(sandbox, code, timeout=90)
    assert result["status"] == 0, output
    return json.loads(output.strip().splitlines()[-1])


def cell_ok(sandbox: Sandbox, code: str) -> str:
    result, output = run_cell(sandbox, code, timeout=90)
    assert result["status"] == 0, output
    return output


def stop(user: User, sandbox: Sandbox) -> None:
    """The learner's stop, carried out by the worker."""
    actions.sandbox_stop(user_id=user.pk, broker=sandbox.broker)
    wait_for(lambda: Sandbox.objects.get(pk=sandbox.pk).state == State.STOPPED, timeout=90, what="stopped")


def kept_file(user: User, broker: str):
    return get_backend().kept_path(kept.kept_key(user_id=user.pk, broker=broker))


def test_kafka_topics_messages_and_a_groups_committed_offset_come_back_after_a_stop(
    celery_worker, learner, units_cleanup, kept_cleanup
):
    first = provision(learner, "kafka")
    assert "COMMITTED 2" in cell_ok(first, KAFKA_PRODUCE)
    stop(learner, first)

    again = provision(learner, "kafka")
    assert again.pk != first.pk and again.unit != first.unit
    seen = cell_json(again, KAFKA_READ)
    assert seen["values"] == ["order-0", "order-1", "order-2"], seen
    assert seen["committed"] == 2, seen  # the group resumes where it stopped
    state = KeptState.objects.get(user=learner, broker="kafka")
    assert state.sandbox_id == again.pk and kept_payload([state])["kafka"]["in_use"] is True


def test_rabbitmq_persistent_messages_come_back_and_deleting_the_account_deletes_the_kept_data(
    celery_worker, learner, units_cleanup, kept_cleanup
):
    first = provision(learner, "rabbitmq")
    assert "DEPTH 2" in cell_ok(first, RABBIT_PUBLISH)
    stop(learner, first)
    state = KeptState.objects.get(user=learner, broker="rabbitmq")
    assert state.sandbox_id is None and state.size_bytes > 0
    assert kept_file(learner, "rabbitmq").exists()

    again = provision(learner, "rabbitmq")
    assert cell_json(again, RABBIT_READ) == ["order-0", "order-1"]
    with pytest.raises(SandboxError):
        kept.kept_discard(user_id=learner.pk, broker="rabbitmq")  # a running broker holds it
    assert "DEPTH 2" in cell_ok(again, RABBIT_PUBLISH)
    # This time the idle timeout stops it: the reaper's stop keeps the data as the learner's does.
    Sandbox.objects.filter(pk=again.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert reconcile.sandboxes_reap_idle() == [again.pk]
    wait_for(lambda: Sandbox.objects.get(pk=again.pk).state == State.STOPPED, timeout=90, what="reaped")
    assert KeptState.objects.get(user=learner, broker="rabbitmq").sandbox_id is None
    path = kept_file(learner, "rabbitmq")
    assert path.exists()

    User.objects.get(pk=learner.pk).delete()
    assert not KeptState.objects.filter(key=path.name.removesuffix(".ext4")).exists()
    assert not path.exists()


def test_a_nats_stream_comes_back_reset_and_discard_give_an_empty_broker_and_data_past_the_quota_is_not_kept(
    celery_worker, learner, units_cleanup, kept_cleanup
):
    first = provision(learner, "nats")
    assert "MSGS 3" in cell_ok(first, NATS_PUBLISH)
    stop(learner, first)
    again = provision(learner, "nats")
    assert cell_json(again, NATS_READ) == [3, "order-0"]

    # A reset: a fresh broker, and nothing kept of the old one.
    actions.sandbox_reset(user_id=learner.pk, broker="nats")
    wait_for(
        lambda: Sandbox.objects.filter(user=learner, broker="nats", state=State.READY).exclude(pk=again.pk).exists(),
        timeout=120,
        what="a fresh nats sandbox",
    )
    fresh = Sandbox.objects.get(user=learner, broker="nats", state=State.READY)
    assert cell_json(fresh, NATS_READ) is None
    assert not KeptState.objects.filter(user=learner, broker="nats").exists()
    assert not kept_file(learner, "nats").exists()

    # A discard: the next start is a fresh broker.
    assert "MSGS 3" in cell_ok(fresh, NATS_PUBLISH)
    stop(learner, fresh)
    assert kept_file(learner, "nats").exists()
    kept.kept_discard(user_id=learner.pk, broker="nats")
    assert not kept_file(learner, "nats").exists()
    after_discard = provision(learner, "nats")
    assert cell_json(after_discard, NATS_READ) is None

    # Room is made under the quota by dropping the learner's oldest other kept data, and their pages hear of it.
    older = kept_file(learner, "redis")
    older.write_bytes(b"\0" * 4096)
    KeptState.objects.create(
        user=learner,
        broker="redis",
        key=kept.kept_key(user_id=learner.pk, broker="redis"),
        size_bytes=settings.SANDBOX_KEPT_QUOTA_MB * kept.MB - 1,
        saved_at=timezone.now() - timedelta(days=1),
    )
    assert "MSGS 3" in cell_ok(after_discard, NATS_PUBLISH)
    channel = run(user_channel(learner.pk))
    stop(learner, after_discard)
    assert run(next_kept_message(channel)).startswith("Чтобы сохранить данные брокера NATS")
    assert not KeptState.objects.filter(user=learner, broker="redis").exists() and not older.exists()
    assert KeptState.objects.filter(user=learner, broker="nats").exists()

    # Past the learner's quota the stop keeps nothing (and says so to their pages).
    # Stopped here rather than by the worker, which reads its settings once.
    # A ready unit waits in the warm pool, but it runs on an empty disk: kept data gets a unit of its own.
    with override_settings(SANDBOX_WARM_POOL={"nats": 1}):
        [pooled] = pool.sandbox_pool_fill()
    wait_for(lambda: Sandbox.objects.get(pk=pooled).state == State.READY, timeout=120, what="a pooled nats ready")
    last = provision(learner, "nats")
    assert last.pk != pooled and Sandbox.objects.get(pk=pooled).user_id is None
    assert cell_json(last, NATS_READ) == [3, "order-0"]
    with override_settings(SANDBOX_KEPT_QUOTA_MB=0):
        lifecycle.sandbox_transition(last, State.STOPPING)
        provisioning.sandbox_unit_stop(sandbox_id=last.pk)
    assert not KeptState.objects.filter(user=learner, broker="nats").exists()
    assert not kept_file(learner, "nats").exists()


async def user_channel(user_id: int) -> str:
    """A channel in the learner's group, as an open page has: it hears what their pages hear."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(f"user-{user_id}", channel)
    return channel


async def next_kept_message(channel: str) -> str:
    """The message of the next sandbox.kept event that carries one."""
    layer = get_channel_layer()
    while True:
        event = await asyncio.wait_for(layer.receive(channel), timeout=30)
        if event["type"] == "sandbox.kept" and event.get("message"):
            return event["message"].format(**event["params"])
