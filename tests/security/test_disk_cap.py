"""The disk door: a broker told to keep everything fills its unit's capped filesystem, never the host's disk.

Through the real worker and agent, a cell fills a Kafka topic with ``retention.bytes=-1`` and another a
durable RabbitMQ queue nobody reads, as fast as a cell can; the host's free space (on the filesystem holding
the units' folders) falls by no more than the cap, and the learner's exit carries the reason.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.conf import settings

from sandboxes import agent_client
from sandboxes.backends import disks, get_backend
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.process import ProcessBackend
from sandboxes.models import Sandbox, State
from sandboxes.services import actions, provisioning
from tests.aio import run
from tests.sandboxes.test_lifecycle import provision, run_cell
from tests.services import wait_for

# alone: the host's free space is measured, which the other worker's brokers would take from too (tests/turns.py).
pytestmark = [pytest.mark.integration, pytest.mark.alone, pytest.mark.django_db(transaction=True)]

# The page test's fixtures live beside the browser tests; this module is named after its door instead.

MB = 1024 * 1024
#: What the host may lose besides the cap: other processes on a shared machine write too (seen: 200 MB
#: in 7 s while other suites ran). The unit's image is the exact measure, asserted to be within the cap.
SLACK = 192 * MB
#: Each cell stops by itself after this many times the cap (so that a run without the cap is bounded),
#: far enough past cap + SLACK that the host's loss without a cap cannot pass.
OVERSHOOT = 6

KAFKA_FILL = """
import os, time
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
import kafka.record.default_records as records
# kafka-python checksums each batch in pure Python (about 1 MB/s here); identical batches need it once.
checksums, checksum = {{}}, records.calc_crc32c
records.calc_crc32c = lambda view: checksums.get(bytes(view)) or checksums.setdefault(bytes(view), checksum(view))
servers = os.environ["BOOTSTRAP_SERVERS"]
admin = KafkaAdminClient(bootstrap_servers=servers)
admin.create_topics([NewTopic("keep-everything", 1, 1, topic_configs={{"retention.bytes": "-1", "retention.ms": "-1"}})])
admin.close()
producer = KafkaProducer(bootstrap_servers=servers, acks=1, linger_ms=5, batch_size=1 << 20,
                         request_timeout_ms=5000, max_block_ms=5000, retries=0)
payload = os.urandom(256 * 1024)
acknowledged, started = 0, time.monotonic()
try:
    while acknowledged < {limit}:
        futures = [producer.send("keep-everything", payload, timestamp_ms=1) for _ in range(8)]
        for future in futures:
            future.get(timeout=15)
            acknowledged += len(payload)
finally:
    print("acknowledged", acknowledged, "in", round(time.monotonic() - started, 1), "s")
"""

RABBIT_FILL = """
import os, time, pika
params = pika.URLParameters(os.environ["AMQP_URL"])
params.blocked_connection_timeout = 5  # a blocked publisher gives up after 5 s instead of waiting for ever
connection = pika.BlockingConnection(params)
channel = connection.channel()
channel.queue_declare("keep-everything", durable=True)
payload = os.urandom(256 * 1024)
persistent = pika.BasicProperties(delivery_mode=2)
published, started = 0, time.monotonic()
try:
    while published < {limit}:
        channel.basic_publish("", "keep-everything", payload, persistent)
        published += len(payload)
finally:
    print("published", published, "in", round(time.monotonic() - started, 1), "s")
"""

PURGE = """
import os, pika
connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
print("purged", connection.channel().queue_purge("keep-everything").method.message_count)
"""


def host_free() -> int:
    fs = os.statvfs(settings.SANDBOX_ROOT)
    return fs.f_bavail * fs.f_frsize


def fill(sandbox: Sandbox, code: str) -> dict:
    backend = get_backend()
    cap = settings.SANDBOX_DISK_MB[sandbox.broker] * MB
    before = host_free()
    started = time.monotonic()
    result, output = run_cell(sandbox, code.format(limit=OVERSHOOT * cap), timeout=120)
    seconds = time.monotonic() - started
    drop = before - host_free()
    taken = disks.allocated_bytes(disks.image_path(backend.root, sandbox.unit))
    word = "acknowledged " if sandbox.broker == "kafka" else "published "
    assert word in output, (result, output)
    written = int(output.split(word)[1].split()[0])
    print(
        f"{sandbox.broker}: cap {cap // MB} MB, written before refusal {written / MB:.1f} MB, "
        f"host free space fell {drop / MB:.1f} MB, the unit's disk takes {taken / MB:.1f} MB, {seconds:.1f} s; "
        f"exit {result}"
    )
    assert drop <= cap + SLACK, f"the host lost {drop / MB:.0f} MB to a {cap // MB} MB cap"
    assert written < OVERSHOOT * cap, f"the broker took {OVERSHOOT}x its cap:\n{output}"
    assert taken <= cap
    # The learner is told why: the exit carries the hint the page words ("the sandbox's disk is full").
    assert result["status"] != 0, output
    assert (result.get("hint") or {}).get("code") == "disk-full", (result, output)
    assert result["hint"]["cap_mb"] <= cap // MB
    return result


def test_a_topic_and_a_queue_that_keep_everything_fill_their_cap_and_not_the_host(celery_worker, learner, units_cleanup):
    for broker in ("kafka", "rabbitmq"):
        actions.sandbox_ensure(user_id=learner.pk, broker=broker)  # both start at once; provision() waits
    kafka, rabbit = provision(learner, "kafka"), provision(learner, "rabbitmq")
    backend = get_backend()

    fill(kafka, KAFKA_FILL)
    # Kafka has no watermark: it stops at the wall, and a later cell is refused with the same reason.
    socket = provisioning.sandbox_socket(sandbox=kafka)
    wait_for(lambda: run(agent_client.status(socket))["stage"] == "failed", timeout=60, what="Kafka stopped", interval=0.2)
    again, output = run_cell(kafka, "print('hello')")
    assert again["reason"] == "not-ready" and "disk is full" in again.get("error", ""), again
    assert again["hint"]["code"] == "disk-full"

    fill(rabbit, RABBIT_FILL)
    # RabbitMQ blocked the publisher and stays up: reading the queue frees the disk again.
    drained, output = run_cell(rabbit, PURGE)
    assert drained["status"] == 0, output
    assert int(output.split()[-1]) > 0, output

    # Stopping removes the capped filesystem and its file.
    for sandbox in (kafka, rabbit):
        actions.sandbox_stop(user_id=learner.pk, broker=sandbox.broker)
    for sandbox in (kafka, rabbit):
        wait_for(lambda pk=sandbox.pk: Sandbox.objects.get(pk=pk).state == State.STOPPED, timeout=60, what="stopped")
        assert not disks.mounted(backend.unit_dir(sandbox.unit) / disks.DATA)
        assert not disks.image_path(backend.root, sandbox.unit).exists()


def test_a_unit_whose_capped_disk_cannot_be_made_is_refused(monkeypatch, units_cleanup):
    monkeypatch.setattr(disks, "MKFS", ("mkfs.ext4-not-installed",))
    backend = ProcessBackend()
    name = f"{backend.instance}-699101"
    with pytest.raises(disks.DiskUnavailable, match="is not started without it"):
        backend.start(UnitSpec(name=name, broker="nats"))
    assert not backend.socket_path(name).exists()
    assert backend._agent_pid(name) is None
    assert not backend.image_path(name).exists()
    assert name not in backend.list_units()  # nothing of the refused unit is left to clean up


def test_reconcile_finds_and_removes_a_capped_disk_left_behind(units_cleanup):
    backend = ProcessBackend()
    name = f"{backend.instance}-699102"
    mount_point = disks.data_dir(backend.unit_dir(name))
    disks.create(image=backend.image_path(name), mount_point=mount_point, size_mb=64)
    assert disks.mounted(mount_point)
    assert name in backend.list_units()
    backend.stop(name)
    assert not disks.mounted(mount_point)
    assert not backend.image_path(name).exists()
    assert not Path(backend.unit_dir(name)).exists()
    assert name not in backend.list_units()
