"""The two-node Kubernetes lab of scripts/k8s-lab.sh: a real cluster, reached as the platform will reach it.

The session brings the lab up once (building the pinned binaries the first time, about ten
minutes) and takes it down at the end, even after a failure; it fails, never skips, when it
cannot. Pods run an image pushed to the lab's registry by the test itself, built from
Debian's static busybox: nothing is pulled from the internet. The last tests take the lab
down and look for anything left on the machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.k8s.lab import LAB_SCRIPT, Lab, host_state, lab_script, tail
from tests.services import ROOT, wait_for

# Setting the lab up includes the first build of Kubernetes (about ten minutes on two cores).
pytestmark = [pytest.mark.k8s, pytest.mark.timeout(3000)]


def pod_manifest(name: str, image: str, node: str, labels: dict[str, str]) -> dict:
    """A web server pod pinned to a node by a nodeSelector (the scheduler places it), unprivileged."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": node},
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
            "containers": [
                {
                    "name": "web",
                    "image": image,
                    "imagePullPolicy": "Always",
                    "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                }
            ],
        },
    }


@dataclass(frozen=True)
class Web:
    """A web pod on each node serving a token baked into the image the test pushed."""

    token: str
    digest: str
    pods: dict[str, dict]  # node name -> the pod as the API server has it


@pytest.fixture(scope="module")
def web(lab: Lab) -> Web:
    token = secrets.token_hex(8)
    with tempfile.TemporaryDirectory(prefix="k8s-lab-image-") as rootfs:
        result = lab_script("busybox-rootfs", rootfs)
        assert result.returncode == 0, tail(result)
        Path(rootfs, "www", "index.html").write_text(token)
        result = lab_script("push-image", rootfs, f"lab-test/web:{token}")
        assert result.returncode == 0, tail(result)
    digest = result.stdout.strip().splitlines()[-1]
    image = f"{lab.registry}/lab-test/web:{token}"
    # Created as the platform will create its pods: with its own, limited account.
    for node in lab.node_ips():
        pod = pod_manifest(f"web-{node}", image, node, {"app": "lab-test", "node": node})
        lab.kubectl("apply", "-f", "-", stdin=json.dumps(pod), platform=True)
        service = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": f"web-{node}"},
            "spec": {"selector": {"app": "lab-test", "node": node}, "ports": [{"port": 80, "targetPort": 8080}]},
        }
        lab.kubectl("apply", "-f", "-", stdin=json.dumps(service), platform=True)
    names = [f"pod/web-{node}" for node in lab.node_ips()]
    try:
        lab.kubectl("-n", lab.namespace, "wait", "--for=condition=Ready", "--timeout=180s", *names, timeout=200)
    except pytest.fail.Exception as not_ready:
        events = lab.kubectl("-n", lab.namespace, "get", "events", "--sort-by=.lastTimestamp")
        pytest.fail(f"{not_ready}\n{events[-3000:]}", pytrace=False)
    pods = {}
    for node in lab.node_ips():
        pods[node] = json.loads(lab.kubectl("-n", lab.namespace, "get", f"pod/web-{node}", "-o", "json"))
    return Web(token=token, digest=digest, pods=pods)


def fetch_in(lab: Lab, pod: str, url: str) -> str:
    """The body at url, fetched from inside pod (busybox's wget; its own -T option crashes in Debian 12's build)."""
    return lab.kubectl("-n", lab.namespace, "exec", pod, "--", "timeout", "10", "wget", "-q", "-O", "-", url, timeout=60)


def test_both_nodes_are_ready_with_the_pinned_kubelet(lab: Lab):
    nodes = json.loads(lab.kubectl("get", "nodes", "-o", "json"))["items"]
    seen = {}
    for node in nodes:
        ready = next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")
        address = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
        seen[node["metadata"]["name"]] = (ready, address, node["status"]["nodeInfo"]["kubeletVersion"])
    assert seen == {name: ("True", ip, "v1.37.2") for name, ip in lab.node_ips().items()}


def test_a_pod_runs_on_each_node_from_the_image_pushed_to_the_lab_registry(lab: Lab, web: Web):
    for node, pod in web.pods.items():
        assert pod["spec"]["nodeName"] == node
        status = pod["status"]["containerStatuses"][0]
        assert status["ready"] is True
        # The digest of what the node pulled is the manifest the test pushed.
        assert status["imageID"].endswith(web.digest), status["imageID"]


def test_pods_answer_each_other_across_nodes(lab: Lab, web: Web):
    first, second = web.pods
    for client, server in ((first, second), (second, first)):
        ip = web.pods[server]["status"]["podIP"]
        answer = fetch_in(lab, f"web-{client}", f"http://{ip}:8080/")
        assert answer == web.token, f"web-{client} -> web-{server} at {ip}"


def service_ready(lab: Lab, service: str) -> bool:
    """Whether the Service's EndpointSlice lists a ready endpoint (the controller writes it after the pod is Ready)."""
    slices = json.loads(
        lab.kubectl("-n", lab.namespace, "get", "endpointslices", "-l", f"kubernetes.io/service-name={service}", "-o", "json")
    )["items"]
    return any(e.get("conditions", {}).get("ready") for s in slices for e in s.get("endpoints") or ())


def fetch_until(lab: Lab, pod: str, url: str, *, tries: int = 4) -> str:
    """fetch_in, again while kube-proxy has not yet written the Service's rules on that node (it syncs them
    some time after the endpoint appears; a connection to the ClusterIP meanwhile goes nowhere)."""
    for attempt in range(1, tries + 1):
        try:
            return fetch_in(lab, pod, url)
        except pytest.fail.Exception:
            if attempt == tries:
                raise
            time.sleep(2)
    raise AssertionError("unreachable")


def test_a_service_answers_from_the_other_node_and_from_the_host(lab: Lab, web: Web):
    first, second = web.pods
    service_ip = json.loads(lab.kubectl("-n", lab.namespace, "get", f"service/web-{second}", "-o", "json"))["spec"]["clusterIP"]
    wait_for(lambda: service_ready(lab, f"web-{second}"), timeout=60, what=f"service/web-{second} with a ready endpoint")
    # From a pod on the first node to the Service whose only endpoint is on the second.
    answer = fetch_until(lab, f"web-{first}", f"http://{service_ip}/")
    assert answer == web.token
    # From the host, where the platform runs.
    assert requests.get(f"http://{service_ip}/", timeout=10).text == web.token


def test_the_platform_account_may_run_pods_in_its_namespace_and_nothing_else(lab: Lab):
    token = lab.platform_token()
    pod = pod_manifest("rbac-probe", f"{lab.registry}/k8s-lab/busybox:1", "node1", {"app": "rbac-probe"})
    created = lab.api("POST", f"/api/v1/namespaces/{lab.namespace}/pods", token=token, body=pod)
    assert created.status_code == 201, created.text
    deleted = lab.api("DELETE", f"/api/v1/namespaces/{lab.namespace}/pods/rbac-probe", token=token)
    assert deleted.status_code == 200, deleted.text

    refused = {
        "list nodes": lab.api("GET", "/api/v1/nodes", token=token),
        "read kube-system's secrets": lab.api("GET", "/api/v1/namespaces/kube-system/secrets", token=token),
        "read its own token": lab.api(
            "GET",
            f"/api/v1/namespaces/{lab.env['K8S_LAB_PLATFORM_NAMESPACE']}/secrets/{lab.env['K8S_LAB_PLATFORM_ACCOUNT']}-token",
            token=token,
        ),
        "create a pod in default": lab.api("POST", "/api/v1/namespaces/default/pods", token=token, body=pod),
        "exec into a pod": lab.api("POST", f"/api/v1/namespaces/{lab.namespace}/pods/x/exec?command=sh", token=token),
    }
    assert {what: r.status_code for what, r in refused.items()} == dict.fromkeys(refused, 403)


def test_kubelets_authorize_every_caller(lab: Lab):
    """A kubelet asks the API server about each caller: no credentials 401, the platform's token 403."""
    token = lab.platform_token()
    for ip in lab.node_ips().values():
        url = f"https://{ip}:10250/pods"
        anonymous = requests.get(url, verify=lab.ca, timeout=10)
        platform = requests.get(url, headers={"Authorization": f"Bearer {token}"}, verify=lab.ca, timeout=10)
        assert (anonymous.status_code, platform.status_code) == (401, 403), url


def test_up_again_changes_nothing(lab: Lab, web: Web):
    pids = {p.name: p.read_text() for p in (lab.folder / "run").glob("*.pid")}
    result = lab_script("up", timeout=600)
    assert result.returncode == 0, tail(result)
    assert {p.name: p.read_text() for p in (lab.folder / "run").glob("*.pid")} == pids
    status = lab_script("status")
    assert status.returncode == 0, status.stdout
    pod = json.loads(lab.kubectl("-n", lab.namespace, "get", f"pod/web-{next(iter(web.pods))}", "-o", "json"))
    assert pod["metadata"]["uid"] == next(iter(web.pods.values()))["metadata"]["uid"]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


# ---- down: nothing of the lab remains on the machine ----


def leftovers(lab: Lab) -> dict[str, list[str]]:
    """Everything on the machine that belongs to the lab."""
    found: dict[str, list[str]] = {}
    netns = set(lab.env["K8S_LAB_NETNS"].split())
    found["netns"] = (
        sorted(p.name for p in Path("/run/netns").glob("*") if p.name in netns) if Path("/run/netns").exists() else []
    )
    links = set(lab.env["K8S_LAB_HOST_LINKS"].split())
    found["links"] = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name in links or p.name.startswith("k8slab"))
    cgroups = set(lab.env["K8S_LAB_CGROUPS"].split())
    found["cgroups"] = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/*") if p.name in cgroups)
    found["cgroups"] += sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*") if p.name in cgroups)
    bin_dir = lab.env["K8S_LAB_BIN"]
    processes = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # A killed process waits as a zombie until init collects its exit status; it holds nothing.
            if "\nState:\tZ" in (proc / "status").read_text():
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cgroup = (proc / "cgroup").read_text()
            if "k8slab-" in cgroup or str(lab.folder) in cmdline or bin_dir in cmdline:
                processes.append(f"{proc.name}: {cmdline[:120]}")
    found["processes"] = processes
    found["mounts"] = [line for line in Path("/proc/self/mounts").read_text().splitlines() if str(lab.folder) in line]
    found["routes"] = [
        line
        for line in subprocess.run(["ip", "route"], capture_output=True, text=True, check=True).stdout.splitlines()
        if "k8slab" in line
    ]
    found["folder"] = [str(lab.folder)] if lab.folder.exists() else []
    return {what: items for what, items in found.items() if items}


@pytest.mark.alone  # the lab's links go: no browser of the other worker may see it (tests/k8s/conftest.py lab)
def test_down_leaves_nothing_behind(lab: Lab, host_before):
    assert leftovers(lab), "the lab should be up before it is taken down"
    result = lab_script("down", timeout=300)
    assert result.returncode == 0, tail(result)
    assert leftovers(lab) == {}
    assert host_state() == host_before
    again = lab_script("down", timeout=300)
    assert (again.returncode, "FAILED" in again.stderr) == (0, False), tail(again)


@pytest.mark.alone  # as above
def test_down_cleans_up_after_an_up_that_stopped_half_way(lab: Lab):
    """`up` killed once the API server runs leaves a half-made lab; `down` removes all of it."""
    assert lab_script("down", timeout=300).returncode == 0
    assert leftovers(lab) == {}, "the half-made lab starts from nothing"
    process = subprocess.Popen(
        [str(LAB_SCRIPT), "up"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "kube-apiserver" in line:
                break
    finally:
        # The whole `up` at once (its kubectl and curl too), as a crash would; the lab's daemons
        # run in sessions of their own and stay.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert any("kube-apiserver" in line for line in lines), "".join(lines)
    wait_for(lambda: "processes" in leftovers(lab), timeout=10, what="the half-made lab's processes")
    assert {"netns", "cgroups", "processes", "folder"} <= leftovers(lab).keys()
    started = time.monotonic()
    result = lab_script("down", timeout=300)
    assert result.returncode == 0, tail(result)
    assert leftovers(lab) == {}, f"after {time.monotonic() - started:.1f} s"
