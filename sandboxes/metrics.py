"""What operators see of sandboxes: states counted from the database at scrape time, and the
provisioning and cell round-trip histograms, each observation also one JSON log line with its ids.

Metric objects are made at import; their values are per process (or per worker child, in the
worker's multiprocess mode: ``courseplatform/worker_metrics.py``). The states are not a tally kept
in a process but a query at each scrape, so every web replica reports the same truth.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Count
from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sandboxes.brokers import BROKERS

from .models import Purpose, Sandbox, State

log = logging.getLogger(__name__)

#: A broker boots in seconds (NATS) to a minute or more (Kafka, ActiveMQ under load).
PROVISIONING_BUCKETS = (0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180)
#: A quiet cell answers in a tenth of a second; a cell may run for its limit (minutes).
ROUND_TRIP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

PROVISIONING_SECONDS = Histogram(
    "broker_academy_sandbox_provisioning_seconds",
    "Seconds from a sandbox's request (its record made) to ready, observed by the process that saw it ready.",
    ["broker"],
    buckets=PROVISIONING_BUCKETS,
)
CELL_ROUND_TRIP_SECONDS = Histogram(
    "broker_academy_cell_round_trip_seconds",
    "Seconds from a cell.run frame received to its cell.exit sent, in the web process that ran it.",
    ["broker"],
    buckets=ROUND_TRIP_BUCKETS,
)


def provisioning_observe(*, sandbox: Sandbox) -> None:
    """Record that ``sandbox`` just became ready (call once, right after its transition to READY)."""
    if sandbox.ready_at is None or sandbox.created_at is None:
        return
    seconds = max(0.0, (sandbox.ready_at - sandbox.created_at).total_seconds())
    PROVISIONING_SECONDS.labels(broker=sandbox.broker).observe(seconds)
    log.debug(  # the lifecycle line already says "ready": one INFO line per state change
        "sandbox %s %s: provisioned in %.1f s",
        sandbox.pk,
        sandbox.broker,
        seconds,
        extra={"sandbox_id": sandbox.pk, "user_id": sandbox.user_id, "broker": sandbox.broker, "seconds": round(seconds, 3)},
    )


def cell_round_trip_observe(*, sandbox: Sandbox, user_id: int, seconds: float, status: object, op: str = "run") -> None:
    """Record one cell run that ended with its exit frame sent, ``seconds`` after its run frame came."""
    CELL_ROUND_TRIP_SECONDS.labels(broker=sandbox.broker).observe(seconds)
    log.info(
        "cell %s ended in %.2f s",
        op,
        seconds,
        extra={
            "sandbox_id": sandbox.pk,
            "user_id": user_id,
            "broker": sandbox.broker,
            "status": status,
            "seconds": round(seconds, 3),
        },
    )


class SandboxStatesCollector(Collector):
    """``broker_academy_sandboxes{broker,state,purpose}``: sandbox records by kind, state and purpose, read at scrape.

    Every known broker, state and purpose is reported (zero when none), so a series never vanishes.
    """

    def collect(self) -> Iterator[GaugeMetricFamily]:
        counts = {
            (row["broker"], row["state"], row["purpose"]): row["n"]
            for row in Sandbox.objects.values("broker", "state", "purpose").annotate(n=Count("pk")).order_by()
        }
        family = GaugeMetricFamily(
            "broker_academy_sandboxes",
            "Sandbox records by broker, state and purpose, from the database at scrape time.",
            labels=["broker", "state", "purpose"],
        )
        brokers = sorted(set(BROKERS) | {broker for broker, _, _ in counts})
        for broker in brokers:
            for state in State.values:
                for purpose in Purpose.values:
                    family.add_metric([broker, state, purpose], counts.get((broker, state, purpose), 0))
        yield family
