"""k8s.sim.*: the Kubernetes backend against the lab's API server with 50 fake nodes (kwok): 1,000 sandboxes at once.

The control plane only: the lab's real API server, etcd, scheduler and controllers; kwok
(tests/k8s/kwok.py) plays the kubelet of 50 fake nodes, marking each pod bound to one Running
and Ready at once. No image is pulled and no agent runs, so nothing here says how fast a real
sandbox starts; it says what the backend asks of the API server, and how that scales.

This process is "the worker": it drives the real KubernetesBackend (the platform's limited
account, settings SANDBOX_K8S_NODE_SELECTOR/TOLERATIONS pointing at the fake nodes) with a
pool of THREADS threads, as many workers' Celery slots would:

- ``k8s.sim.pods<N>_scheduled_s``: first start() called to the last of the N pods bound to a
  node (seen by a watch of its own, not counted below); ``..._started_s``: to the last start()
  returned (the backend's own wait for Ready, through its watch, included);
- ``k8s.sim.reconcile<N>_s``: the real ``sandboxes_reconcile`` over N ready records and their N
  units. For each ready record it reads the pod (poll) and asks the agent for its status; the fake
  pods' addresses are loopback ones where nothing listens, so each status ask is refused at once
  (a real agent answers in a few ms more); ``k8s.sim.list_units<N>_s``: list_units alone;
- ``k8s.sim.stop<N>_s``: stop() of every unit, the same pool, until each pod is gone;
- ``k8s.sim.api_requests_per_sandbox``: HTTP requests the backend's client sent for one start
  and one stop (counted by wrapping its REST client's ``request``: every call, watches included);
  per phase in ``k8s.sim.api_requests_per_start``/``_per_stop``/``reconcile<N>_api_requests``;
- ``k8s.sim.worker_rss_mb``: this process's resident memory with the N units started;
  ``..._growth_mb`` over before the start.

The lab is brought up when it is not (and down again after); kwok, the fake nodes, the records
and every object made are removed at the end, whatever happened.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import psutil
from django.contrib.auth.models import User
from django.test import override_settings
from kubernetes import client, config, watch

from sandboxes.backends import get_backend
from sandboxes.backends.base import UnitSpec
from sandboxes.backends.kubernetes import LABEL_INSTANCE
from sandboxes.models import Sandbox, State
from sandboxes.services.lifecycle import unit_name
from sandboxes.services.reconcile import sandboxes_reconcile
from tests.k8s import kwok
from tests.k8s.kwok import RequestCount
from tests.k8s.lab import K8S_BACKEND, lab_script, read_env, tail

from .cpu_usage import cpu_share
from .harness import Platform, say
from .report import Results

BROKERS = ("rabbitmq", "kafka", "nats", "activemq")
#: Sandboxes, fake nodes and the pool's threads (a wide fleet of workers' slots); --quick: fewer.
FULL, QUICK = (1000, 50), (200, 10)
THREADS = int(os.environ.get("BENCH_K8S_SIM_THREADS", "50"))
SCHEDULE_TIMEOUT_S = 900.0
CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-scheduler", "kube-controller-manager", "kwok")


class Scheduled(threading.Thread):
    """Watches the instance's pods on a client of its own; notes when each is first bound to a node."""

    def __init__(self, kubeconfig: str, namespace: str, instance: str, count: int) -> None:
        super().__init__(name="k8s-sim-scheduled", daemon=True)
        self.core: Any = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
        self.namespace, self.selector, self.count = namespace, f"{LABEL_INSTANCE}={instance}", count
        self.bound: dict[str, tuple[float, str]] = {}  # pod -> (monotonic time, node)
        self.watching = threading.Event()

    def run(self) -> None:
        listed = self.core.list_namespaced_pod(self.namespace, label_selector=self.selector)
        version = listed.metadata.resource_version
        self.watching.set()
        deadline = time.monotonic() + SCHEDULE_TIMEOUT_S
        while len(self.bound) < self.count and time.monotonic() < deadline:
            watcher = watch.Watch()
            for event in watcher.stream(
                self.core.list_namespaced_pod,
                self.namespace,
                label_selector=self.selector,
                resource_version=version,
                timeout_seconds=30,
            ):
                pod = event["object"]
                version = pod.metadata.resource_version
                if pod.spec.node_name and pod.metadata.name not in self.bound:
                    self.bound[pod.metadata.name] = (time.monotonic(), pod.spec.node_name)
                if len(self.bound) >= self.count:
                    watcher.stop()


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of the machine, this process (the worker) and the lab's control plane and kwok."""
    times = psutil.cpu_times()
    own = psutil.Process().cpu_times()
    seconds = {"wall": time.monotonic(), "machine": sum(times) - times.idle - getattr(times, "iowait", 0.0)}
    seconds["worker"] = own.user + own.system
    for process in psutil.process_iter(["name", "cpu_times"]):
        if process.info["name"] in CONTROL_PLANE and process.info["cpu_times"] is not None:
            used = process.info["cpu_times"]
            seconds[process.info["name"]] = seconds.get(process.info["name"], 0.0) + used.user + used.system
    return seconds


@contextlib.contextmanager
def cpu_noted(notes: dict[str, str], phase: str) -> Iterator[None]:
    """Notes the CPU each one used during the block, as shares of a core (bench/cpu_usage.py)."""
    before = cpu_seconds()
    yield
    notes[phase] = cpu_share(before, cpu_seconds())


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


@contextlib.contextmanager
def lab_running(results: Results, area: str) -> Iterator[dict[str, str]]:
    """The lab's addresses for the block; a lab that was not up is brought up, and taken down again after."""
    env = read_env()
    try:
        admin = config.new_client_from_config(config_file=env["K8S_LAB_ADMIN_KUBECONFIG"])
        client.VersionApi(admin).get_code(_request_timeout=5)
        brought_up = False
    except Exception:  # no kubeconfig yet, or no API server answering: bring it up
        say(f"{area}: the lab is not up; bringing it up (scripts/k8s-lab.sh up)")
        result = lab_script("up", timeout=2700)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/k8s-lab.sh up failed:\n{tail(result)}") from None
        env, brought_up = read_env(), True
    try:
        yield env
    finally:
        if brought_up:
            say(f"{area}: taking the lab down again")
            down = lab_script("down", timeout=600)
            if down.returncode != 0:
                results.note(f"{area}: scripts/k8s-lab.sh down failed: {tail(down)}")


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    count, nodes = QUICK if quick else FULL
    with lab_running(results, "k8s-sim") as env:
        settings = {
            "SANDBOX_BACKEND": K8S_BACKEND,
            "SANDBOX_K8S_KUBECONFIG": env["K8S_LAB_PLATFORM_KUBECONFIG"],
            "SANDBOX_K8S_NAMESPACE": env["K8S_LAB_SANDBOX_NAMESPACE"],
            **kwok.SETTINGS,
        }
        # The client's pool holds cpu_count * 5 connections; with more threads it opens (and drops) more,
        # warning each time: counted in the requests all the same, not worth a line each.
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        # The platform's own worker is paused meanwhile: the adopt it schedules at its start would take the
        # simulation's provisioning records (no follower of theirs runs) for a crashed start's, and fail them.
        if platform.worker is not None:
            platform.worker.stop(timeout=15)
        try:
            say(f"k8s-sim: kwok with {nodes} fake nodes")
            with kwok.FakeNodes(env["K8S_LAB_ADMIN_KUBECONFIG"], nodes) as fleet, override_settings(**settings):
                simulate(results, env, fleet, count)
        finally:
            platform.restart_worker(env={})


def records_create(count: int) -> list[Sandbox]:
    """``count`` learner records (four kinds each for count/4 learners), as provisioning makes them."""
    users = User.objects.bulk_create([User(username=f"k8s-sim-{i}") for i in range(-(-count // len(BROKERS)))])
    made = [
        Sandbox(user=users[i // len(BROKERS)], broker=BROKERS[i % len(BROKERS)], state=State.PROVISIONING) for i in range(count)
    ]
    sandboxes = Sandbox.objects.bulk_create(made)
    for sandbox in sandboxes:
        sandbox.unit = unit_name(sandbox)
    Sandbox.objects.bulk_update(sandboxes, ["unit"])
    return sandboxes


def simulate(results: Results, env: dict[str, str], fleet: kwok.FakeNodes, count: int) -> None:
    backend: Any = get_backend()
    requests = RequestCount(backend.api)
    sandboxes = records_create(count)
    names = [s.unit for s in sandboxes]
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=THREADS)
    cpu: dict[str, str] = {}
    try:
        watcher = Scheduled(env["K8S_LAB_PLATFORM_KUBECONFIG"], backend.namespace, backend.instance, count)
        watcher.start()
        watcher.watching.wait(30)
        rss_before = rss_mb()
        requests.take()
        say(f"k8s-sim: starting {count} sandboxes with {THREADS} threads")
        started = time.monotonic()
        specs = [UnitSpec(name=s.unit, broker=s.broker, owner=str(s.user_id)) for s in sandboxes]
        with cpu_noted(cpu, "start"):
            list(pool.map(backend.start, specs))
            started_s = time.monotonic() - started
            watcher.join(SCHEDULE_TIMEOUT_S)
        rss_started = rss_mb()
        starts = requests.take()
        if len(watcher.bound) != count:
            raise RuntimeError(f"{len(watcher.bound)} of {count} pods were seen bound to a node")
        elsewhere = {node for _, node in watcher.bound.values()} - set(fleet.names)
        if elsewhere:
            raise RuntimeError(f"sandbox pods landed on nodes that are not fake ones: {sorted(elsewhere)}")
        scheduled_s = max(at for at, _ in watcher.bound.values()) - started
        per_node = collections.Counter(node for _, node in watcher.bound.values())
        say(f"k8s-sim: all {count} scheduled in {scheduled_s:.1f} s, started in {started_s:.1f} s")

        Sandbox.objects.filter(pk__in=[s.pk for s in sandboxes]).update(state=State.READY)
        began = time.monotonic()
        with cpu_noted(cpu, "reconcile"):
            found = sandboxes_reconcile()
        reconcile_s = time.monotonic() - began
        reconciles = requests.take()
        if any(found.values()):
            raise RuntimeError(f"the reconcile found healthy units wanting: { {k: len(v) for k, v in found.items()} }")
        began = time.monotonic()
        listed = backend.list_units()
        list_s = time.monotonic() - began
        if sorted(listed) != sorted(names):
            raise RuntimeError(f"list_units saw {len(listed)} units, not {count}")
        requests.take()

        say(f"k8s-sim: reconcile {reconcile_s:.1f} s; stopping all {count}")
        began = time.monotonic()
        with cpu_noted(cpu, "stop"):
            list(pool.map(backend.stop, names))
        stop_s = time.monotonic() - began
        stops = requests.take()
        left = backend.list_units()
        if left:
            raise RuntimeError(f"{len(left)} units left after stopping all")
    finally:
        leftover = backend.list_units()
        if leftover:
            say(f"k8s-sim: removing {len(leftover)} units left")
            list(pool.map(backend.stop, leftover))
        pool.shutdown()
        User.objects.filter(username__startswith="k8s-sim-").delete()  # and their records

    load = os.getloadavg()
    results.value(f"k8s.sim.pods{count}_scheduled_s", scheduled_s)
    results.value(f"k8s.sim.pods{count}_started_s", started_s)
    results.value(f"k8s.sim.reconcile{count}_s", reconcile_s)
    results.value(f"k8s.sim.list_units{count}_s", list_s)
    results.value(f"k8s.sim.stop{count}_s", stop_s)
    results.value("k8s.sim.api_requests_per_sandbox", (sum(starts.values()) + sum(stops.values())) / count)
    results.value("k8s.sim.api_requests_per_start", sum(starts.values()) / count)
    results.value("k8s.sim.api_requests_per_stop", sum(stops.values()) / count)
    results.value(f"k8s.sim.reconcile{count}_api_requests", sum(reconciles.values()))
    results.value("k8s.sim.worker_rss_mb", rss_started)
    results.value("k8s.sim.worker_rss_growth_mb", rss_started - rss_before)
    results.note(
        f"k8s-sim: {count} sandboxes over {len(fleet.names)} fake nodes ({min(per_node.values())}-{max(per_node.values())} "
        f"pods each), {THREADS} threads; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    for phase, counted in (("start", starts), ("reconcile", reconciles), ("stop", stops)):
        results.note(f"k8s-sim {phase} requests: " + ", ".join(f"{k} {v}" for k, v in sorted(counted.items())))
        results.note(f"k8s-sim {phase} {cpu[phase]}")
