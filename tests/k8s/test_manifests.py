"""deploy/kubernetes/ as kustomize renders it (the lab's kubectl): hardened pods, probes, narrow RBAC, no secrets."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from tests.k8s.lab import Lab
from tests.services import ROOT

pytestmark = [pytest.mark.k8s]

KUSTOMIZATIONS = ROOT / "deploy" / "kubernetes"


def render(lab: Lab, name: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [lab.env["K8S_LAB_KUBECTL"], "kustomize", str(KUSTOMIZATIONS / name)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in objects if o["kind"] in ("Deployment", "StatefulSet")}


@pytest.mark.parametrize("name", ["base", "lab"])
def test_every_platform_pod_is_hardened_and_limited(lab: Lab, name: str):
    for workload, spec in pod_specs(render(lab, name)).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, workload
        assert spec["securityContext"]["runAsUser"] != 0, workload
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, workload
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), workload
        assert not any("hostPath" in v for v in spec.get("volumes", [])), workload
        for container in spec.get("initContainers", []) + spec["containers"]:
            context = container["securityContext"]
            where = f"{workload}/{container['name']}"
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert "memory" in container["resources"]["limits"], where


def test_web_has_two_replicas_probed_on_healthz_behind_a_service(lab: Lab):
    objects = render(lab, "base")
    [web] = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "web"]
    assert web["spec"]["replicas"] == 2
    [container] = web["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"].startswith("/healthz?checks=database,redis")
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz?checks="
    [service] = [o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "web"]
    assert service["spec"]["selector"].items() <= web["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize("name", ["base", "lab"])
def test_the_backend_account_has_rights_in_the_sandboxes_namespace_only_and_no_secret_is_committed(lab: Lab, name: str):
    objects = render(lab, name)
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Secret"}
    [account] = [o for o in objects if o["kind"] == "ServiceAccount"]
    [role] = [o for o in objects if o["kind"] == "Role"]
    [binding] = [o for o in objects if o["kind"] == "RoleBinding"]
    settings = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("platform-settings"))
    sandboxes = settings["data"]["SANDBOX_K8S_NAMESPACE"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == sandboxes
    assert sandboxes != account["metadata"]["namespace"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": account["metadata"]["namespace"]}
    ]
    assert not any("exec" in r for rule in role["rules"] for r in rule["resources"])
    assert all(o["metadata"].get("namespace") in (None, account["metadata"]["namespace"], sandboxes) for o in objects)
    if name == "lab":  # its own namespaces: deleting them leaves the lab's host-platform account alone
        lab_namespaces = {lab.env["K8S_LAB_PLATFORM_NAMESPACE"], lab.env["K8S_LAB_SANDBOX_NAMESPACE"]}
        assert not {account["metadata"]["namespace"], sandboxes} & lab_namespaces
