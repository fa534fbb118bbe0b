"""Platform-wide metrics: refusals by reason (each also one JSON log line) and the Celery queues' depth.

Refusals are counted where they are decided, in whichever process that is (web or worker); the
queue depth is read from the Celery broker's Redis at scrape time. The sandboxes' own metrics are
in ``sandboxes/metrics.py``; what serves them all is ``courseplatform/metrics_endpoint.py``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator

import redis
from django.conf import settings
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: Every reason a refusal is counted under (the ``reason`` label); docs/metrics.md says where each is decided.
REASONS = (
    "ws_frames",  # a live connection sent frames faster than its rate
    "ws_runs",  # the user already runs as many cells or checks as they may
    "ws_cell_running",  # a second Run of a cell still running
    "ws_lifecycle",  # too many start/stop/reset requests in the minute
    "ws_limits_unavailable",  # the limits' Redis did not answer: refused, not let through
    "admission_queued",  # the platform is full: the start waits in the queue
    "admission_busy",  # the admission lock was not had in time
    "quota",  # the user runs as many sandboxes as they may
    "login_throttled",
    "signup_throttled",
)

REFUSALS = Counter(
    "broker_academy_refusals",
    "Requests refused by a limit, by reason, in the process that refused them.",
    ["reason"],
)
for _reason in REASONS:
    REFUSALS.labels(reason=_reason)  # every reason present from the start, at zero


def refusal_count(*, reason: str, user_id: int | None = None, logged: bool = True, **fields: object) -> None:
    """Count one refusal under ``reason`` and (unless ``logged`` is False: a flood) say it in the log with the ids."""
    REFUSALS.labels(reason=reason).inc()
    if logged:
        log.info("refused: %s", reason, extra={"reason": reason, "user_id": user_id, **fields})


#: The Redis transport keeps a queue's messages of priority 3, 6 and 9 in lists of their own (kombu's sep + step).
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)


@functools.cache
def _broker_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2)


class CeleryQueueDepthCollector(Collector):
    """``broker_academy_celery_queue_depth{queue}``: messages waiting in each Celery queue (LLEN), read at scrape."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from courseplatform.celery import app

        queues = sorted(app.amqp.queues.keys()) or [app.conf.task_default_queue]
        client = _broker_client(settings.CELERY_BROKER_URL)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    for key in (queue, *(f"{queue}{PRIORITY_SEPARATOR}{step}" for step in PRIORITY_STEPS)):
                        pipe.llen(key)
                lengths = pipe.execute()
        except redis.RedisError:
            # No figure rather than a false zero; the scrape goes on with the rest.
            log.warning("queue depth: the Celery broker's Redis did not answer", exc_info=True)
            return
        family = GaugeMetricFamily(
            "broker_academy_celery_queue_depth",
            "Messages waiting in a Celery queue (not yet taken by a worker), from Redis at scrape time.",
            labels=["queue"],
        )
        per_queue = 1 + len(PRIORITY_STEPS)
        for index, queue in enumerate(queues):
            family.add_metric([queue], sum(lengths[index * per_queue : (index + 1) * per_queue]))
        yield family
