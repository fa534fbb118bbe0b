"""The two-node lab as the k8s tests reach it: its script, its addresses, kubectl as admin or as the platform."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from sandboxes.images import image_ref
from tests.services import ROOT

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


def k8s_settings(lab: Lab, images: dict[str, str]) -> dict[str, str]:
    """The environment that makes a worker run the kubernetes backend against the lab with these images."""
    return {
        "SANDBOX_BACKEND": K8S_BACKEND,
        "SANDBOX_K8S_KUBECONFIG": lab.env["K8S_LAB_PLATFORM_KUBECONFIG"],
        "SANDBOX_K8S_NAMESPACE": lab.namespace,
        "SANDBOX_K8S_IMAGES": ",".join(f"{kind}={ref}" for kind, ref in images.items()),
    }


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
