"""The two-node lab as the k8s tests reach it: its script, its addresses, kubectl as admin or as the platform."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sandboxes.backends.kubernetes_manifests import LABEL_UNIT
from sandboxes.images import image_ref
from tests.services import PLATFORM_USER, ROOT, platform_dir

LAB_SCRIPT = ROOT / "scripts" / "k8s-lab.sh"
K8S_BACKEND = "sandboxes.backends.kubernetes.KubernetesBackend"
# Settings the kubelet would change machine-wide if the lab let it (it must not).
HOST_SYSCTLS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops")


def lab_script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LAB_SCRIPT), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def tail(result: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    return "\n".join((result.stdout + result.stderr).splitlines()[-lines:])


@dataclass(frozen=True)
class Lab:
    """Where the lab is, as `scripts/k8s-lab.sh env` says."""

    env: dict[str, str]

    @property
    def folder(self) -> Path:
        return Path(self.env["K8S_LAB"])

    @property
    def registry(self) -> str:
        return self.env["K8S_LAB_REGISTRY"]

    @property
    def namespace(self) -> str:
        return self.env["K8S_LAB_SANDBOX_NAMESPACE"]

    @property
    def ca(self) -> str:
        return self.env["K8S_LAB_CA"]

    def node_ips(self) -> dict[str, str]:
        return dict(pair.split("=") for pair in self.env["K8S_LAB_NODES"].split())

    def kubectl(self, *args: str, platform: bool = False, stdin: str | None = None, timeout: float = 120) -> str:
        """kubectl as the lab's admin (or as the platform); fails the test with kubectl's message."""
        kubeconfig = self.env["K8S_LAB_PLATFORM_KUBECONFIG" if platform else "K8S_LAB_ADMIN_KUBECONFIG"]
        result = subprocess.run(
            [self.env["K8S_LAB_KUBECTL"], "--kubeconfig", kubeconfig, "--cache-dir", self.env["K8S_LAB_KUBECACHEDIR"], *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)}: {result.stderr.strip()}", pytrace=False)
        return result.stdout

    def platform_token(self) -> str:
        config = self.kubectl("config", "view", "--raw", "-o", "json", platform=True)
        return json.loads(config)["users"][0]["user"]["token"]

    def api(self, method: str, path: str, *, token: str, body: dict | None = None) -> requests.Response:
        return requests.request(
            method,
            self.env["K8S_LAB_API_SERVER"] + path,
            headers={"Authorization": f"Bearer {token}"},
            json=body,
            verify=self.ca,
            timeout=30,
        )


def lab_images(lab: Lab, brokers: list[str]) -> dict[str, str]:
    """Each broker's image in the lab's registry (sandboxes/images/registry.py); the Docker images are built
    first when missing. Raises RuntimeError with the command's output when a step fails."""
    import docker

    try:
        client = docker.from_env()
        for broker in brokers:
            client.images.get(image_ref(broker))
    except docker.errors.DockerException:  # no engine, or an image missing: as the docker tests, build them
        for argv in (["scripts/docker-engine.sh"], ["make", "images"]):
            result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"`{' '.join(argv)}` failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}") from None
    python = os.fspath(ROOT / ".venv" / "bin" / "python")
    result = subprocess.run(
        [python, "-m", "sandboxes.images.registry", "--registry", lab.registry, *brokers],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return dict(zip(brokers, result.stdout.split(), strict=True))


def platform_files(lab: Lab) -> dict[str, str]:
    """What the platform's user needs of its own to run the kubernetes backend, as in a deployment: the kubeconfig
    of the lab's limited account (root made the lab's; a copy, 0600) and a SANDBOX_ROOT for kept archives."""
    kubeconfig = platform_dir("k8s") / "kubeconfig"
    kubeconfig.write_bytes(Path(lab.env["K8S_LAB_PLATFORM_KUBECONFIG"]).read_bytes())
    kubeconfig.chmod(0o600)
    shutil.chown(kubeconfig, PLATFORM_USER, PLATFORM_USER)
    return {"SANDBOX_K8S_KUBECONFIG": str(kubeconfig), "SANDBOX_ROOT": str(platform_dir("k8s-sandboxes"))}


def k8s_settings(lab: Lab, images: dict[str, str]) -> dict[str, str]:
    """The environment that makes a worker (the platform's user) run the kubernetes backend against the lab with
    these images."""
    return {
        "SANDBOX_BACKEND": K8S_BACKEND,
        **platform_files(lab),
        "SANDBOX_K8S_NAMESPACE": lab.namespace,
        "SANDBOX_K8S_IMAGES": ",".join(f"{kind}={ref}" for kind, ref in images.items()),
    }


def get_json(lab: Lab, *args: str) -> dict[str, Any]:
    return json.loads(lab.kubectl("-n", lab.namespace, "get", *args, "-o", "json"))


def leftovers(lab: Lab, unit: str) -> list[str]:
    """Every object of the unit still in the namespace, found by its label and by its names."""
    by_label = lab.kubectl(
        "-n", lab.namespace, "get", "pods,secrets,networkpolicies", "-l", f"{LABEL_UNIT}={unit}", "-o", "name"
    ).split()
    names = {f"pod/{unit}", f"secret/{unit}-agent", f"networkpolicy.networking.k8s.io/{unit}"}
    every = lab.kubectl("-n", lab.namespace, "get", "pods,secrets,networkpolicies", "-o", "name").split()
    return sorted(set(by_label) | (names & set(every)))


def memory_mib(resources: dict[str, Any], which: str) -> float:
    """A container's memory request or limit in MiB, however the API server wrote it back (1024Mi comes back as 1Gi)."""
    from kubernetes.utils import parse_quantity

    return float(parse_quantity(resources[which]["memory"])) / 2**20


def pod_cgroup(lab: Lab, name: str) -> Path | None:
    """The memory cgroup of the sandbox pod ``name`` on this machine (the lab's nodes are namespaces here),
    found through a process of it: its path up to the part that names the pod's uid (cgroup v1 or v2)."""
    uid = get_json(lab, f"pod/{name}")["metadata"]["uid"]
    marks = (f"pod{uid}", f"pod{uid.replace('-', '_')}")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            lines = (entry / "cgroup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if controllers not in ("memory", ""):
                continue
            parts = path.split("/")
            for i, part in enumerate(parts):
                if any(mark in part for mark in marks):
                    return Path("/sys/fs/cgroup", "memory" if controllers else "", *parts[1 : i + 1])
    return None


def cgroup_memory(cgroup: Path) -> tuple[int, int]:
    """Memory charged to ``cgroup`` now (MiB), and the kernel's OOM kills so far in it and every cgroup below it."""
    v2 = (cgroup / "memory.current").exists()
    charged = int((cgroup / ("memory.current" if v2 else "memory.usage_in_bytes")).read_text()) // (1024 * 1024)
    kills = 0
    # v1 counts a kill in the victim's own cgroup only; v2's .local file likewise (its memory.events adds up the children).
    for events in cgroup.rglob("memory.events.local" if v2 else "memory.oom_control"):
        counts = dict(line.split() for line in events.read_text().splitlines())
        kills += int(counts.get("oom_kill", 0))
    return charged, kills


def read_env() -> dict[str, str]:
    result = lab_script("env")
    assert result.returncode == 0, tail(result)
    env = {}
    for line in result.stdout.splitlines():
        key, _, value = line.partition("=")
        env[key] = value.strip('"')
    return env


def host_state() -> dict[str, str | bool]:
    """What the lab must not change on the machine: kernel settings the kubelet likes to set, ~/.kube."""
    state: dict[str, str | bool] = {name: Path("/proc/sys", name).read_text().strip() for name in HOST_SYSCTLS}
    state["~/.kube exists"] = (Path.home() / ".kube").exists()
    return state
