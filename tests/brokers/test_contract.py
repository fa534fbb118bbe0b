"""The broker-kind contract, the registry and the parts of taps that need no running broker."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest

from sandboxes.brokers import BROKERS, UnknownBroker, broker_names, get_broker
from sandboxes.brokers.base import (
    BrokerKind,
    BrokerLimits,
    LaunchSpec,
    Site,
    stop_process_group,
)

ROOT = Path(__file__).resolve().parents[2]

# docs/course-format.md, "What a cell gets"
DOCUMENTED = {
    "kafka": {"BOOTSTRAP_SERVERS": "localhost:9092"},
    "rabbitmq": {
        "AMQP_URL": "amqp://guest:guest@localhost:5672/%2F",
        "RABBITMQ_API_URL": "http://guest:guest@localhost:15672/api",
    },
    "nats": {"NATS_URL": "nats://localhost:4222"},
    "activemq": {
        "STOMP_HOST": "localhost",
        "STOMP_PORT": "61613",
        "STOMP_USER": "admin",
        "STOMP_PASSWORD": "admin",
        "OPENWIRE_URL": "tcp://localhost:61616",
    },
    "redis": {"REDIS_URL": "redis://localhost:6379/0"},
    "kafka-cluster": {
        "BOOTSTRAP_SERVERS": "localhost:9092,localhost:9094,localhost:9096",
        "CLUSTER_CONTROL_URL": "http://localhost:9080",
    },
}


def test_registry_names_every_documented_broker():
    assert broker_names() == list(BROKERS) == ["kafka", "rabbitmq", "nats", "activemq", "redis", "kafka-cluster"]


def test_get_broker_returns_one_shared_instance_per_kind():
    for name in broker_names():
        kind = get_broker(name)
        assert kind is get_broker(name)
        assert kind.name == name and kind.title


def test_unknown_broker_error_names_the_known_ones():
    with pytest.raises(UnknownBroker, match="known: kafka, rabbitmq, nats, activemq, redis, kafka-cluster"):
        get_broker("mqtt")


@pytest.mark.parametrize("name", list(DOCUMENTED))
def test_connection_env_is_exactly_the_documented_variables(name):
    kind = get_broker(name)
    assert kind.connection_env(host="localhost", ports=kind.ports()) == DOCUMENTED[name]


def test_subclass_missing_a_method_is_refused_when_defined():
    with pytest.raises(TypeError, match=r"must define .*snapshot"):

        class Half(BrokerKind):
            name, title, default_ports = "half", "Half", {"x": 1}

            def missing(self):
                return []

            def prepare(self, *, site):
                pass

            def launch(self, *, site):
                pass

            def probe_ready(self, *, host, ports):
                return False

            def connection_env(self, *, host, ports):
                return {}

            def tap(self, *, host, ports, emit, stop):
                pass


def test_ports_overrides_are_checked_by_name():
    kafka = get_broker("kafka")
    assert kafka.ports({"kafka": 19092}) == {"kafka": 19092, "controller": 9093}
    with pytest.raises(ValueError, match="unknown port names"):
        kafka.ports({"kafak": 1})


def test_limits_are_frozen_small_and_validated():
    limits = BrokerLimits()
    assert limits.heap_mb <= limits.memory_mb <= 1024
    with pytest.raises(FrozenInstanceError):
        limits.memory_mb = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        BrokerLimits(memory_mb=256, heap_mb=512)


def test_stop_process_group_also_ends_helpers_that_outlive_the_leader():
    spec = LaunchSpec(
        argv=("/bin/sh", "-c", "sleep 300 & exec sleep 300"),
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
    )
    proc = spec.start()
    stop_process_group(proc, timeout=5)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)


@pytest.mark.parametrize("name", ["nats", "activemq", "rabbitmq", "redis"])
def test_prepare_is_idempotent_and_launch_runs_in_the_foreground(name):
    kind = get_broker(name)
    with tempfile.TemporaryDirectory(prefix="ba-test-prepare-") as tmp:
        Path(tmp).chmod(0o711)
        data = Path(tmp) / "data"
        data.mkdir()
        site = Site(data_dir=data, ports=kind.ports())
        for _ in range(2):
            kind.prepare(site=site)
        spec = kind.launch(site=site)
        assert spec.cwd == str(data)
        argv = " ".join(spec.argv)
        assert "-daemon" not in argv and "-detached" not in argv and " --daemon" not in argv


def test_nats_subject_matching_and_ack_subjects():
    from sandboxes.brokers.nats.tap import _ack_reply, subject_matches

    assert subject_matches("orders.>", "orders.new.eu") and not subject_matches("orders.>", "orders")
    assert subject_matches("orders.*", "orders.new") and not subject_matches("orders.*", "orders.new.eu")
    assert _ack_reply("$JS.ACK.ORDERS.worker.1.5.5.1700000000000000000.0") == (
        "ORDERS",
        5,
        1700000000000,
    )
    assert _ack_reply("$JS.ACK.hub.ACC.ORDERS.worker.1.7.7.1700000000000000000.0.tok") == ("ORDERS", 7, 1700000000000)


def test_activemq_advisory_body_and_properties_are_decoded():
    from sandboxes.brokers.activemq.advisory import advisory_event

    body = {
        "ActiveMQBytesMessage": {
            "timestamp": 1700000000000,
            "persistent": True,
            "groupID": "g1",
            "content": {"data": ["aGVsbG8AAAA="], "offset": 0, "length": 5},
            # {"myh": "1"}: count, key, STRING_TYPE, value
            "marshalledProperties": {
                "data": ["AAAAAQADbXloCQABMQ=="],
                "offset": 0,
                "length": 13,
            },
        }
    }
    headers = {
        "destination": "/topic/ActiveMQ.Advisory.MessageDelivered.Queue.orders",
        "orignalDestination": "queue://orders",
        "orignalMessageId": "ID:x-1",
    }
    event = advisory_event(headers, json.dumps(body).encode())
    assert event is not None
    assert (event.direction, event.destination, event.value.text) == (
        "produced",
        "/queue/orders",
        "hello",
    )
    assert event.headers == {"myh": "1"} and event.timestamp_ms == 1700000000000
    assert event.detail == {"message_id": "ID:x-1", "persistent": "true", "group": "g1"}
    internal = {
        **headers,
        "orignalDestination": "queue://ActiveMQ.Statistics.Destination",
    }
    assert advisory_event(internal, json.dumps(body).encode()) is None


def test_install_scripts_read_the_pinned_versions_and_cache_folders(tmp_path):
    from sandboxes.brokers import versions

    def ask(*args: str) -> str:
        env = {"PATH": os.environ["PATH"], "BROKER_ACADEMY_CACHE": str(tmp_path)}
        result = subprocess.run(
            ["python3", "-m", "sandboxes.brokers.versions", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        return result.stdout.strip()

    assert ask("kafka") == versions.version("kafka") == versions.PINNED["kafka"]
    assert ask("--home", "nats") == str(tmp_path / f"nats-{versions.PINNED['nats']}")
    assert ask().splitlines() == [f"{name} {pinned}" for name, pinned in versions.PINNED.items()]


def test_a_reported_version_agrees_with_the_pin_to_the_shorter_precision(monkeypatch):
    from sandboxes.brokers import versions

    monkeypatch.setitem(versions.PINNED, "rabbitmq", "3.10")
    monkeypatch.setitem(versions.PINNED, "kafka", "4.4.0")
    assert versions.is_pinned("rabbitmq", "3.10.8") and versions.is_pinned("kafka", "4.4")
    assert not versions.is_pinned("rabbitmq", "3.1") and not versions.is_pinned("kafka", "4.3")
    assert not versions.is_pinned("kafka", "4") and not versions.is_pinned("kafka", None)


def test_kafka_names_the_release_of_a_metadata_version_level():
    from sandboxes.brokers.kafka import metadata_release

    # Levels from Kafka's MetadataVersion: 3.9-IV0 is 21, 4.0-IV0..IV3 are 22-25, 4.4-IV2 is 33.
    assert [metadata_release(level) for level in (21, 22, 25, 31, 33)] == ["3.9", "4.0", "4.0", "4.4", "4.4"]
    assert metadata_release(34) is None and metadata_release(0) is None


def test_reconnecting_tap_reconnects_after_failures_closes_each_time_and_stops_promptly():
    from sandboxes.brokers.tap import ReconnectingTap

    stop = threading.Event()
    emitted: list[Any] = []
    calls: list[str] = []

    class Flaky(ReconnectingTap):
        broker = "flaky"

        def connect(self):
            calls.append("connect")
            if calls.count("connect") == 1:
                raise ConnectionRefusedError("not up yet")

        def watch(self):
            calls.append("watch")
            if calls.count("watch") == 1:
                raise ConnectionResetError("lost")
            self.emit(None)
            self.stop.wait()

        def close(self):
            calls.append("close")

    tap = Flaky(host="localhost", ports={}, emit=emitted.append, stop=stop)
    thread = threading.Thread(target=tap.run)
    thread.start()
    deadline = time.monotonic() + 10
    while not emitted and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    started = time.monotonic()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    assert emitted == [None]
    assert calls == ["connect", "close", "connect", "watch", "close", "connect", "watch", "close"]


def test_not_shown_is_one_empty_event_that_counts_what_it_stands_for():
    from sandboxes.brokers.tap import not_shown

    event = not_shown(broker="kafka", direction="consumed", destination="t", count=600, offset=599, detail={"group": "g"})
    assert (event.size, event.offset, event.detail) == (0, 599, {"group": "g", "not_shown": "600"})


def test_stomp_session_gives_up_on_a_listener_that_never_answers_and_leaves_no_thread():
    from sandboxes.brokers.activemq.stomp_session import StompSession
    from sandboxes.brokers.base import BrokerUnavailable

    with socket.create_server(("127.0.0.1", 0)) as silent:
        threads = threading.active_count()
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable, match="not answered"):
            StompSession("127.0.0.1", silent.getsockname()[1], timeout=0.5)
        assert time.monotonic() - started < 3.0
        deadline = time.monotonic() + 5
        while threading.active_count() > threads and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == threads
