"""sandbox.kubernetes.<broker>.cold_start_s, warm_start_s and idle_rss_mb: the process and docker areas' figures, each sandbox a Pod.

The same measurement as bench/sandboxes.py (``sandbox_ensure`` on the real worker, timed until the
record says ready; warm: claims from a filled pool; memory of one idle unit), with the worker on the
kubernetes backend against the two-node lab (brought up if it is not, and taken down again after),
the broker images built as for docker and pushed to the lab's registry. A pod's processes run on a
lab node, which here is a set of namespaces on this machine: its memory is the RSS of every process
in the pod's cgroup (found by the pod's uid), as the other backends count their units' processes.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from django.conf import settings

from sandboxes.backends import get_backend

from . import harness, sandboxes
from .harness import Platform, say
from .k8s_sim import lab_ensure, lab_script, tail
from .report import Results

K8S_BACKEND = "sandboxes.backends.kubernetes.KubernetesBackend"


def _images(registry: str) -> dict[str, str]:
    """Each broker's image in the lab's registry (built for docker first when missing)."""
    python = os.fspath(harness.ROOT / ".venv" / "bin" / "python")
    for argv in (["scripts/docker-engine.sh"], ["make", "-s", "images"]):
        subprocess.run(argv, cwd=harness.ROOT, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    done = subprocess.run(
        [python, "-m", "sandboxes.images.registry", "--registry", registry, *sandboxes.BROKERS],
        cwd=harness.ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return dict(zip(sandboxes.BROKERS, done.stdout.split(), strict=True))


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


def run(platform: Platform, results: Results, *, quick: bool) -> None:
    env, brought_up = lab_ensure()
    try:
        images = _images(env["K8S_LAB_REGISTRY"])
        worker_env = {
            "SANDBOX_K8S_KUBECONFIG": env["K8S_LAB_PLATFORM_KUBECONFIG"],
            "SANDBOX_K8S_NAMESPACE": env["K8S_LAB_SANDBOX_NAMESPACE"],
            "SANDBOX_K8S_IMAGES": ",".join(f"{kind}={ref}" for kind, ref in images.items()),
        }
        saved = {key: getattr(settings, key) for key in worker_env}
        os.environ.update(worker_env)
        settings.SANDBOX_K8S_KUBECONFIG = worker_env["SANDBOX_K8S_KUBECONFIG"]
        settings.SANDBOX_K8S_NAMESPACE = worker_env["SANDBOX_K8S_NAMESPACE"]
        settings.SANDBOX_K8S_IMAGES = images
        platform.switch_backend(K8S_BACKEND)
        try:
            sandboxes.run(platform, results, quick=quick, backend="kubernetes")
        finally:
            platform.switch_backend(None)
            for key, value in saved.items():
                setattr(settings, key, value)
                os.environ.pop(key, None)
    finally:
        if brought_up:
            say("k8s starts: taking the lab down again")
            down = lab_script("down", timeout=600)
            if down.returncode != 0:
                results.note(f"k8s starts: scripts/k8s-lab.sh down failed: {tail(down)}")
