"""sandbox.kubernetes.<broker>.cold_start_s, warm_start_s and idle_rss_mb: the process and docker areas' figures, each sandbox a Pod.

The k8s-agent area (``run_agent``) is bench/agent_latency.py's round trip and event relay, on the process
backend's Unix socket and then over the pod network, in the same run.

The same measurement as bench/sandboxes.py (``sandbox_ensure`` on the real worker, timed until the
record says ready; warm: claims from a filled pool; memory of one idle unit), with the worker on the
kubernetes backend against the two-node lab (brought up if it is not, and taken down again after),
the broker images built as for docker and pushed to the lab's registry. A pod's processes run on a
lab node, which here is a set of namespaces on this machine: its memory is the RSS of every process
in the pod's cgroup (found by the pod's uid), as the other backends count their units' processes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from sandboxes.backends import get_backend
from tests.k8s.lab import K8S_BACKEND, Lab, k8s_settings, lab_images

from . import agent_latency, sandboxes
from .harness import Platform
from .k8s_sim import lab_running
from .report import Results


def pod_pids(name: str) -> list[int]:
    """Processes of the unit's pod on this machine: those whose cgroup path names the pod's uid."""
    pod = get_backend()._read_pod(name)  # type: ignore[attr-defined]
    if pod is None:
        return []
    uid = pod.metadata.uid
    marks = (f"pod{uid}", f"pod{uid.replace('-', '_')}")
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                groups = (entry / "cgroup").read_text()
            except OSError:
                continue
            if any(mark in groups for mark in marks):
                found.append(int(entry.name))
    return found


@contextlib.contextmanager
def on_kubernetes(platform: Platform, results: Results, what: str, kinds: list[str]) -> Iterator[None]:
    """The platform's worker (and this process's backend) on the kubernetes backend in the lab, with these kinds'
    images pushed; back on its own backend afterwards, the lab down again if this brought it up."""
    with lab_running(results, what) as env:
        lab = Lab(env)
        images = lab_images(lab, kinds)
        worker_env = k8s_settings(lab, images)
        saved = {key: getattr(settings, key) for key in worker_env}
        os.environ.update(worker_env)
        # This process asks the same backend as the worker (as tests/k8s/test_backend.py's k8s_backend).
        settings.SANDBOX_K8S_KUBECONFIG = worker_env["SANDBOX_K8S_KUBECONFIG"]
        settings.SANDBOX_K8S_NAMESPACE = worker_env["SANDBOX_K8S_NAMESPACE"]
        settings.SANDBOX_K8S_IMAGES = images
        settings.SANDBOX_ROOT = Path(worker_env["SANDBOX_ROOT"])  # the worker's kept archives (the platform's user's)
        platform.switch_backend(K8S_BACKEND)
        try:
            yield
        finally:
            for key, value in saved.items():
                setattr(settings, key, value)
                os.environ.pop(key, None)
            platform.switch_backend(None)  # its worker started without the kubernetes backend's settings


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    with on_kubernetes(platform, results, "k8s starts", list(sandboxes.BROKERS)):
        sandboxes.run(platform, results, quick=quick, backend="kubernetes")


def run_agent(platform: Platform, results: Results, *, quick: bool) -> None:
    """The k8s-agent area: the agent on its Unix socket first, as the reference, then over the pod network."""
    agent_latency.run(platform, results, backend="process", quick=quick)
    with on_kubernetes(platform, results, "k8s agent", [agent_latency.BROKER]):
        agent_latency.run(platform, results, backend="kubernetes", quick=quick)
