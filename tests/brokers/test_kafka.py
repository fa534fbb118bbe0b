"""Kafka (KRaft, single node): produced records and group commits reach the tap; transactions work."""

from __future__ import annotations

import json

import pytest

from sandboxes.brokers import versions

pytestmark = pytest.mark.integration
KIND = "kafka"


def test_ready_within_target_with_documented_variables(broker):
    assert broker.env == {"BOOTSTRAP_SERVERS": "localhost:9092"}
    assert broker.ready_s < 30.0  # target 15 s; twice that tolerates a busy machine


def test_reports_the_pinned_version(broker):
    # Read from the running broker, not from what was installed: what the learner's page will show.
    assert versions.is_pinned(KIND, broker.version), f"{KIND} says {broker.version!r}, pinned {versions.version(KIND)}"


def test_produced_records_are_tapped_with_partition_offset_key_headers(broker):
    broker.cell(
        """
        import os
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient, NewTopic
        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        KafkaAdminClient(bootstrap_servers=bootstrap).create_topics([NewTopic("tap-orders", 2, 1)])
        producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
        for i in range(3):
            producer.send("tap-orders", key=f"k{i}".encode(), value=f'{{"n": {i}}}'.encode(), headers=[("src", b"cell")], partition=1)
        producer.flush()
        """
    )
    for offset in range(3):
        event = broker.event(direction="produced", destination="tap-orders", offset=offset)
        assert event["partition"] == 1
        assert event["key"] == f"k{offset}"
        assert event["headers"] == {"src": "cell"}
        assert event["value"]["encoding"] == "json"
        assert event["timestamp_ms"] > 0


def test_group_commit_shows_records_as_consumed_by_that_group(broker):
    out = broker.cell(
        """
        import os
        from kafka import KafkaConsumer
        consumer = KafkaConsumer("tap-orders", bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"], group_id="tap-group",
                                 auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000)
        print(sum(1 for _ in consumer))
        consumer.commit()
        consumer.close()
        """
    )
    assert out.strip() == "3"
    for offset in range(3):
        event = broker.event(
            direction="consumed",
            destination="tap-orders",
            offset=offset,
            detail__group="tap-group",
        )
        assert event["partition"] == 1 and event["key"] == f"k{offset}"


def test_transactions_commit_and_are_tapped(broker):
    out = broker.cell(
        """
        import os
        from kafka import KafkaConsumer, KafkaProducer
        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="tap-tx")
        producer.init_transactions()
        producer.begin_transaction()
        producer.send("tap-payments", b"paid 1")
        producer.send("tap-payments", b"paid 2")
        producer.commit_transaction()
        consumer = KafkaConsumer("tap-payments", bootstrap_servers=bootstrap, group_id="tap-tx-group", isolation_level="read_committed",
                                 auto_offset_reset="earliest", consumer_timeout_ms=3000)
        print([r.value.decode() for r in consumer])
        consumer.close()
        """
    )
    assert out.strip() == "['paid 1', 'paid 2']"
    broker.event(direction="produced", destination="tap-payments", offset=1)
    # The commit marker takes offset 2, so the group's committed offset is 3.
    assert (
        broker.event(
            direction="consumed",
            destination="tap-payments",
            offset=1,
            detail__group="tap-tx-group",
        )["value"]["text"]
        == "paid 2"
    )


def test_watching_never_brings_back_a_topic_the_learner_deleted(broker):
    out = broker.cell(
        """
        import os, time
        from kafka import KafkaProducer
        from kafka.admin import KafkaAdminClient, NewTopic
        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("tap-doomed", 1, 1)])
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send("tap-doomed", b"x").get(timeout=10)
        producer.close()
        time.sleep(2)  # long enough for the tap to be reading the topic
        admin.delete_topics(["tap-doomed"])
        time.sleep(4)  # several metadata refreshes of the tap
        print("tap-doomed" in admin.list_topics())
        admin.close()
        """
    )
    assert out.strip() == "False"


def test_confluent_kafka_client_reaches_the_broker(broker):
    broker.cell(
        """
        import os
        from confluent_kafka import Producer
        producer = Producer({"bootstrap.servers": os.environ["BOOTSTRAP_SERVERS"]})
        producer.produce("tap-librdkafka", key=b"k", value=b"\\xff\\x00")
        assert producer.flush(10) == 0
        """
    )
    event = broker.event(direction="produced", destination="tap-librdkafka")
    assert event["value"] == {"encoding": "hex", "text": "ff 00", "truncated": False}


def test_new_consumer_group_protocol_assigns_partitions_on_the_broker(broker):
    # KIP-848 (group.protocol=consumer): the broker assigns, with no JoinGroup/SyncGroup round.
    out = broker.cell(
        """
        import json, os, time
        from confluent_kafka import Consumer, Producer
        from confluent_kafka.admin import AdminClient, NewTopic
        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("tap-848", num_partitions=2, replication_factor=1)])["tap-848"].result()
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(4):
            producer.produce("tap-848", value=f"n{i}".encode(), partition=i % 2)
        assert producer.flush(10) == 0
        config = {"bootstrap.servers": bootstrap, "group.id": "tap-848-group", "group.protocol": "consumer",
                  "auto.offset.reset": "earliest"}
        members = [Consumer({**config, "client.id": f"member-{i}"}) for i in range(2)]
        for member in members:
            member.subscribe(["tap-848"])
        read, errors = 0, set()
        deadline = time.time() + 30
        while time.time() < deadline and (read < 4 or not all(m.assignment() for m in members)):
            for member in members:
                message = member.poll(0.2)
                if message is not None and message.error() is not None:
                    errors.add(message.error().str())
                read += message is not None and message.error() is None
        group = admin.describe_consumer_groups(["tap-848-group"])["tap-848-group"].result()
        print(json.dumps({
            "type": group.type.name,
            "assigned": sorted(sorted(tp.partition for tp in m.assignment.topic_partitions) for m in group.members),
            "read": read,
            "errors": sorted(errors),
        }))
        for member in members:
            member.close()  # commits what each member read
        """
    )
    result = json.loads(out)
    assert result["type"] == "CONSUMER", result
    assert result["assigned"] == [[0], [1]] and result["read"] >= 4
    for partition in (0, 1):
        broker.event(direction="consumed", destination="tap-848", partition=partition, offset=1, detail__group="tap-848-group")


def test_share_group_redelivers_a_released_record_with_its_delivery_count(broker):
    # KIP-932 share groups, with the one Python client that has a share consumer (confluent-kafka).
    out = broker.cell(
        """
        import json, os, time
        from confluent_kafka import AcknowledgeType, Producer, ShareConsumer
        from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                           ResourceType)
        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("tap-jobs", num_partitions=1, replication_factor=1)])["tap-jobs"].result()
        # A share group starts at the end of the log unless its group config says otherwise.
        earliest = ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)
        for future in admin.incremental_alter_configs(
            [ConfigResource(ResourceType.GROUP, "tap-workers", incremental_configs=[earliest])]
        ).values():
            future.result()
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(6):
            producer.produce("tap-jobs", value=f"job-{i}".encode())
        assert producer.flush(10) == 0
        workers = [
            ShareConsumer({"bootstrap.servers": bootstrap, "group.id": "tap-workers", "client.id": f"worker-{i}",
                           "share.acknowledgement.mode": "explicit"})
            for i in range(2)
        ]
        for worker in workers:
            worker.subscribe(["tap-jobs"])
        deliveries = []  # [value, delivery count] in the order handed out, whichever worker got it
        released = False
        deadline = time.time() + 30
        while time.time() < deadline and ["job-0", 2] not in deliveries:
            for worker in workers:
                batch = worker.poll(0.5)
                for message in batch:
                    if message.error() is not None:
                        continue
                    value = message.value().decode()
                    deliveries.append([value, message.delivery_count()])
                    release = value == "job-0" and not released
                    worker.acknowledge(message, AcknowledgeType.RELEASE if release else AcknowledgeType.ACCEPT)
                    released = released or release
                if batch:
                    worker.commit_sync()
        for worker in workers:
            worker.close()
        print(json.dumps(deliveries))
        """
    )
    deliveries = json.loads(out)
    # Each job accepted once; job-0, released by the worker that got it, was handed out again, its count raised.
    assert sorted(value for value, _ in deliveries if value != "job-0") == [f"job-{i}" for i in range(1, 6)]
    assert [count for value, count in deliveries if value == "job-0"] == [1, 2]


def test_snapshot_shows_members_of_a_new_protocol_group_and_lists_share_groups(broker):
    # kafka-python cannot describe a KIP-848 group; the tap asks confluent_kafka's admin (kafka/groups.py).
    broker.cell(
        """
        import os, time
        from confluent_kafka import Consumer, Producer, ShareConsumer
        from confluent_kafka.admin import AdminClient, NewTopic
        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic("tap-live", num_partitions=2, replication_factor=1)])["tap-live"].result()
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(2):
            producer.produce("tap-live", value=b"x", partition=i)
        assert producer.flush(10) == 0
        config = {"bootstrap.servers": bootstrap, "group.id": "tap-live-group", "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False}
        members = [Consumer({**config, "client.id": f"live-{i}"}) for i in range(2)]
        for member in members:
            member.subscribe(["tap-live"])
        worker = ShareConsumer({"bootstrap.servers": bootstrap, "group.id": "tap-live-share"})
        worker.subscribe(["tap-live"])
        deadline = time.time() + 40
        while time.time() < deadline and not all(len(m.assignment()) == 1 for m in members):
            for member in members:
                message = member.poll(0.1)
                if message is not None and message.error() is None:
                    member.commit(message=message, asynchronous=False)
            worker.poll(0.1)
        stay = time.time() + 6  # the tap snapshots every second: let it see the members
        while time.time() < stay:
            for member in members:
                member.poll(0.1)
            worker.poll(0.1)
        for member in members:
            member.close()
        worker.close()
        """,
        timeout=90,
    )

    def live(snap):
        group = next((g for g in snap["groups"] if g["group"] == "tap-live-group"), None)
        # Two members with a partition each: the assignment has settled.
        return group is not None and sorted(len(m["partitions"]) for m in group["members"]) == [1, 1]

    snap = broker.snapshot(live, timeout=30)
    group = next(g for g in snap["groups"] if g["group"] == "tap-live-group")
    assert group["type"] == "consumer"
    owned = sorted((m["client_id"], [p["partition"] for p in m["partitions"]]) for m in group["members"])
    assert [client for client, _ in owned] == ["live-0", "live-1"]
    assert sorted(p for _, parts in owned for p in parts) == [0, 1]
    # Each partition's row names its owner, as for a classic group.
    assert {row["member"] for row in group["offsets"] if row["topic"] == "tap-live"} == {"live-0", "live-1"}
    share = broker.snapshot(lambda s: any(g["group"] == "tap-live-share" for g in s["groups"]), timeout=30)
    entry = next(g for g in share["groups"] if g["group"] == "tap-live-share")
    assert (entry["type"], entry["members"], entry["offsets"]) == ("share", [], [])
    assert entry["state"] in {"Stable", "Empty"}


def test_large_commit_is_summarised_in_one_event(broker):
    broker.cell(
        """
        import os
        from kafka import KafkaConsumer, KafkaProducer
        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
        for i in range(600):
            producer.send("tap-bulk", str(i).encode())
        producer.flush()
        consumer = KafkaConsumer("tap-bulk", bootstrap_servers=bootstrap, group_id="tap-bulk-group",
                                 auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000)
        assert sum(1 for _ in consumer) == 600
        consumer.commit()
        consumer.close()
        """
    )
    broker.event(direction="produced", destination="tap-bulk", offset=599)
    summary = broker.event(direction="consumed", destination="tap-bulk", detail__group="tap-bulk-group")
    assert summary["detail"]["not_shown"] == "600" and summary["size"] == 0
    assert len(broker.events(direction="consumed", destination="tap-bulk")) == 1


def test_a_tap_that_reconnects_shows_what_was_produced_while_it_was_away(broker):
    # The tap in the broker's namespace, as the agent runs it, with one failure made on purpose:
    # after "before" is shown its next read of group offsets fails, and "meanwhile" is produced
    # before it connects again. A tap that starts again from the ends would never show "meanwhile".
    out = broker.cell(
        """
        import os, threading, time
        from kafka import KafkaProducer
        from kafka.errors import KafkaError
        from sandboxes.brokers.kafka import clients, tap

        producer = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
        producer.send("tap-resume", b"created").get(timeout=10)
        seen, connects, stop, fail = [], [], threading.Event(), threading.Event()

        def emit(event):
            if event is not None and event.destination == "tap-resume" and event.direction == "produced":
                seen.append(event.value.text)

        committed, connect = clients.Clients.committed, tap.KafkaTap.connect

        def committed_or_fail(self, *args, **kwargs):
            if fail.is_set():
                fail.clear()
                raise KafkaError("made to fail by the test")
            return committed(self, *args, **kwargs)

        def connect_after_a_message(self):
            connects.append(time.time())
            if len(connects) > 1:
                producer.send("tap-resume", b"meanwhile").get(timeout=10)
            connect(self)

        clients.Clients.committed = committed_or_fail
        tap.KafkaTap.connect = connect_after_a_message
        watcher = tap.KafkaTap(host="localhost", ports={"kafka": 9092}, emit=emit, stop=stop)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        time.sleep(3)  # the tap has found the topic and stands at its end
        producer.send("tap-resume", b"before").get(timeout=10)
        deadline = time.time() + 20
        while "before" not in seen and time.time() < deadline:
            time.sleep(0.05)
        fail.set()
        while "meanwhile" not in seen and time.time() < deadline + 10:
            time.sleep(0.05)
        stop.set()
        thread.join(10)
        print(seen)
        """
    )
    assert out.strip() == "['before', 'meanwhile']"


def test_a_tap_whose_first_connection_comes_late_shows_what_came_since_it_was_made(broker):
    # On a busy machine the agent's tap may reach the broker after the learner's first cell has produced and
    # a group has committed: those are still news. What was there before the tap was made is not.
    out = broker.cell(
        """
        import os, threading, time
        from kafka import KafkaConsumer, KafkaProducer
        from sandboxes.brokers.kafka import tap

        bootstrap = os.environ["BOOTSTRAP_SERVERS"]
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send("tap-late", b"before").get(timeout=10)
        time.sleep(0.05)
        seen, stop = [], threading.Event()

        def emit(event):
            if event is not None and event.destination == "tap-late":
                seen.append((event.direction, event.value.text))

        watcher = tap.KafkaTap(host="localhost", ports={"kafka": 9092}, emit=emit, stop=stop)
        time.sleep(0.05)
        producer.send("tap-late", b"late").get(timeout=10)
        reader = KafkaConsumer("tap-late", bootstrap_servers=bootstrap, group_id="late-readers",
                               auto_offset_reset="earliest", enable_auto_commit=False)
        got = []
        while len(got) < 2:
            got += [r for records in reader.poll(timeout_ms=1000).values() for r in records]
        reader.commit()
        reader.close()
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        deadline = time.time() + 20
        while len(seen) < 2 and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(1)
        stop.set()
        thread.join(10)
        print(sorted(seen))
        """
    )
    assert out.strip() == "[('consumed', 'late'), ('produced', 'late')]"


def test_a_slow_look_at_the_groups_does_not_hold_back_produced_records(broker):
    # The tap follows groups, topics and partition ends with round trips to the broker; once they
    # were made between two polls of the tail and held every produced record back (make bench: stalls
    # of ~100 ms every 1-2 s). Here a group coordinator that takes 5 s to answer is made on purpose:
    # a record produced while the tap waits for it must still be shown at once.
    out = broker.cell(
        """
        import os, threading, time
        from kafka import KafkaProducer
        from sandboxes.brokers.kafka import clients, tap

        producer = KafkaProducer(bootstrap_servers=os.environ["BOOTSTRAP_SERVERS"])
        producer.send("tap-slow-groups", b"created").get(timeout=10)
        shown, stop, slow, waiting = {}, threading.Event(), threading.Event(), threading.Event()

        def emit(event):
            if event is not None and event.destination == "tap-slow-groups" and event.direction == "produced":
                shown[event.value.text] = time.time()

        committed = clients.Clients.committed

        def committed_slowly(self, *args, **kwargs):
            if slow.is_set():
                waiting.set()
                time.sleep(5)
            return committed(self, *args, **kwargs)

        clients.Clients.committed = committed_slowly
        watcher = tap.KafkaTap(host="localhost", ports={"kafka": 9092}, emit=emit, stop=stop)
        thread = threading.Thread(target=watcher.run, daemon=True)
        thread.start()
        time.sleep(3)  # the tap has found the topic and stands at its end
        slow.set()
        waiting.wait(10)
        sent = time.time()
        producer.send("tap-slow-groups", b"during").get(timeout=10)
        deadline = time.time() + 15
        while "during" not in shown and time.time() < deadline:
            time.sleep(0.01)
        slow.clear()
        stop.set()
        thread.join(15)
        print(round(shown["during"] - sent, 2) if "during" in shown else "never")
        """
    )
    assert out.strip() != "never" and float(out) < 2.0, f"shown {out} s after it was produced, while the groups' answer took 5 s"


def test_snapshot_shows_topics_and_group_lag_without_internal_topics(broker):
    snap = broker.snapshot(lambda s: {"tap-group", "tap-tx-group"} <= {g["group"] for g in s["groups"]})
    names = {t["name"] for t in snap["topics"]}
    assert {"tap-orders", "tap-payments"} <= names
    assert not names & {"__consumer_offsets", "__transaction_state"}
    orders = next(t for t in snap["topics"] if t["name"] == "tap-orders")
    assert [p["high_watermark"] for p in orders["partitions"]] == [0, 3]
    group = next(g for g in snap["groups"] if g["group"] == "tap-group")
    # The field the page reads; the consumer closed long ago, so the group is empty and keeps its offsets.
    row = {"topic": "tap-orders", "partition": 1, "committed": 3, "end_offset": 3, "lag": 0, "member": None}
    assert row in group["offsets"]
    assert (group["state"], group["members"]) == ("Empty", [])


def test_its_classes_come_from_the_class_archive_the_install_step_made(broker):
    """sandboxes/brokers/class_archive.py: the JVM maps the archive (a missing or refused one would not be mapped)."""
    from pathlib import Path

    from sandboxes.brokers.class_archive import archive_path
    from sandboxes.brokers.jvm import java_binary
    from sandboxes.brokers.kafka.kind import Kafka

    archive = archive_path(Kafka().libs(), java_binary() or "java")
    assert archive.is_file(), f"no {archive}: `make install` makes it (python -m sandboxes.brokers.class_archive_make)"
    assert str(archive) in Path(f"/proc/{broker.broker_pid}/maps").read_text()


def test_memory_is_small(broker, record_property):
    rss = broker.rss_mb()
    record_property("rss_mb", rss)
    assert 0 < rss < 600


def test_stop_leaves_no_process(broker):
    assert broker.stop() == 0
    assert broker.pids_in_namespace() == []


def test_storage_is_formatted_even_when_the_cluster_id_starts_with_a_dash(tmp_path, monkeypatch):
    import base64
    import uuid

    from sandboxes.brokers import get_broker
    from sandboxes.brokers.base import Site

    dashed = next(u for u in iter(uuid.uuid4, None) if base64.urlsafe_b64encode(u.bytes).startswith(b"-"))
    monkeypatch.setattr(uuid, "uuid4", lambda: dashed)
    kafka = get_broker("kafka")
    kafka.prepare(site=Site(data_dir=tmp_path, ports=kafka.ports()))
    assert list(tmp_path.rglob("meta.properties"))
