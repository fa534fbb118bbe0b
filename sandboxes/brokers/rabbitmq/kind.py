"""RabbitMQ as a broker kind: install check, configuration, launch, probes over the HTTP API, snapshot."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from sandboxes.brokers.base import BASE_ENV, BrokerKind, BrokerUnavailable, Console, Emit, LaunchSpec, Site, missing_client
from sandboxes.brokers.json_http import get_json

from .config import EPMD, RUN_AS, SERVER, launch_spec, write_config
from .tap import EVENT_EXCHANGE, PASSWORD, TAP_QUEUE_PREFIX, TRACE_EXCHANGE, USER, Announced

#: What the browser's console believes its login is: base64 of "learner:console", no secret.
CONSOLE_PLACEHOLDER = "bGVhcm5lcjpjb25zb2xl"


class RabbitMQ(BrokerKind):
    name = "rabbitmq"
    title = "RabbitMQ"
    cell_preload = ("json", "pika", "urllib.request")
    default_ports: ClassVar[dict[str, int]] = {
        "amqp": 5672,
        "management": 15672,
        "dist": 25672,
        "epmd": 4369,
    }
    # The management UI keeps its login in the cookie "m" (key 2258 is its hash of "auth") and sends it as
    # Basic auth from its page script; the agent replaces that header with the unit's own credentials.
    console = Console(port="management", login=(USER, PASSWORD), cookies={"m": "2258:" + CONSOLE_PLACEHOLDER})

    def __init__(self) -> None:
        self._announced: dict[tuple[str, int], Announced] = {}  # by (host, AMQP port)
        self._versions: dict[tuple[str, int], str | None] = {}

    def missing(self) -> list[str]:
        problems = []
        if not os.access(SERVER, os.X_OK):
            problems.append(f"{SERVER} not found: install the Debian package rabbitmq-server (apt-get install rabbitmq-server)")
        elif shutil.which(EPMD, path=BASE_ENV["PATH"]) is None:
            problems.append("epmd not found on PATH: install the Debian package erlang-base")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(RUN_AS)
            except KeyError:
                problems.append(f"user {RUN_AS!r} missing: reinstall the Debian package rabbitmq-server")
        problems += missing_client("pika", "pika")
        return problems

    def prepare(self, *, site: Site) -> None:
        write_config(site)

    def launch(self, *, site: Site) -> LaunchSpec:
        return launch_spec(site)

    def probe_ready(self, *, host: str, ports: Mapping[str, int]) -> bool:
        # The HTTP API starts last of the two; ask it, then make sure AMQP listens too.
        try:
            _api(host, ports, "/overview?columns=node", timeout=0.5)
            with socket.create_connection((host, ports["amqp"]), timeout=0.3):
                return True
        except (OSError, ValueError, BrokerUnavailable):
            return False

    def connection_env(self, *, host: str, ports: Mapping[str, int]) -> dict[str, str]:
        return {
            "AMQP_URL": f"amqp://{USER}:{PASSWORD}@{host}:{ports['amqp']}/%2F",
            "RABBITMQ_API_URL": f"http://{USER}:{PASSWORD}@{host}:{ports['management']}/api",
        }

    def broker_version(self, *, host: str, ports: Mapping[str, int]) -> str | None:
        # The node's own version, as it puts it in its AMQP server properties and its HTTP API.
        try:
            said = _api(host, ports, "/overview?columns=rabbitmq_version").get("rabbitmq_version")
        except (BrokerUnavailable, ValueError, AttributeError):
            return None
        return said if isinstance(said, str) and said else None

    def tap(self, *, host: str, ports: Mapping[str, int], emit: Emit, stop: threading.Event) -> None:
        from .tap import RabbitMQTap

        RabbitMQTap(host=host, ports=ports, emit=emit, stop=stop, announced=self._announced_at(host, ports)).run()

    def _announced_at(self, host: str, ports: Mapping[str, int]) -> Announced:
        return self._announced.setdefault((host, ports["amqp"]), Announced())

    def snapshot(self, *, host: str, ports: Mapping[str, int]) -> dict[str, Any]:
        key = (host, ports["amqp"])
        if key not in self._versions:
            self._versions[key] = _api(host, ports, "/overview?columns=rabbitmq_version").get("rabbitmq_version")
        exchanges = _api(host, ports, "/exchanges?columns=name,vhost,type,durable,auto_delete,internal")
        # Asked of each queue now; the default listing would give the statistics' last fold, a second or more old.
        queues = _api(host, ports, "/queues?disable_stats=true&enable_queue_totals=true")
        consumers = _api(host, ports, "/consumers?columns=queue,consumer_tag")
        bindings = _api(host, ports, "/bindings?columns=source,vhost,destination,destination_type,routing_key,arguments")
        counted = {(c["queue"]["vhost"], c["queue"]["name"], c["consumer_tag"]) for c in consumers}
        counted |= self._announced_at(host, ports).not_yet_listed(counted)
        per_queue: dict[tuple[str, str], int] = {}
        for vhost, name, _tag in counted:
            per_queue[vhost, name] = per_queue.get((vhost, name), 0) + 1
        return {
            "broker": self.name,
            "version": self._versions[key],
            "exchanges": [x for x in exchanges if x["name"] and not x["name"].startswith("amq.")],
            "queues": [
                {
                    "name": q["name"],
                    "vhost": q["vhost"],
                    "type": q.get("type"),
                    "durable": q.get("durable"),
                    "auto_delete": q.get("auto_delete"),
                    "exclusive": q.get("exclusive"),
                    "arguments": q.get("arguments") or {},
                    **{k: q.get(k) or 0 for k in ("messages", "messages_ready", "messages_unacknowledged")},
                    "consumers": per_queue.get((q["vhost"], q["name"]), 0),
                }
                for q in queues
                if not q["name"].startswith(TAP_QUEUE_PREFIX)
            ],
            # The default exchange's implicit bindings and the tap's own are noise on the panel.
            "bindings": [b for b in bindings if b["source"] and b["source"] not in (TRACE_EXCHANGE, EVENT_EXCHANGE)],
        }


def _api(host: str, ports: Mapping[str, int], path: str, *, timeout: float = 1.0) -> Any:
    return get_json(f"http://{host}:{ports['management']}/api{path}", timeout=timeout, login=(USER, PASSWORD))
