"""The wall around a sandbox pod's network, built inside the pod: its cells reach their own broker and nothing else.

A NetworkPolicy is only a wish where the cluster's network plugin does not enforce it (the lab's
bridge CNI does not; many clusters' do not), and inside the pod cells share one account with the
agent and the broker (kubernetes_manifests.py), so nothing in the pod can tell them apart by uid.
Nothing in a sandbox pod needs to open a connection out of it, though: the platform connects to
the agent, and the agent, the broker and the cells talk on loopback. So the pod's own network
namespace refuses every new connection that leaves it, and takes new ones in only on the agent's
port:

- out: loopback, and replies on connections made to the pod (the agent's answers); anything else
  is rejected at once with "administratively prohibited", which a cell sees as "No route to host"
  (EHOSTUNREACH) instead of a connect that hangs until its timeout; a datagram gets EPERM;
- in: loopback, replies, and TCP to the agent's and the checker's ports (the platform and the kubelet's
  probes); the rest is dropped, so another pod cannot reach this one's broker or console ports either.

An init container writes it with nft before the agent starts: it runs as root with one capability,
NET_ADMIN, no privilege escalation, a read-only root and the RuntimeDefault seccomp profile, runs
one fixed command and exits. The ruleset stays with the pod's network namespace (the pod's sandbox
holds it), where the agent's container, without capabilities, can neither change nor remove it.
This is the pattern of Istio's init container, which rewrites a pod's netfilter rules the same way.
It needs a namespace whose Pod Security level admits NET_ADMIN in an init container (privileged).
"""

from __future__ import annotations

from typing import Any

TABLE = "sandbox_fence"
#: nftables ships in every sandbox image (sandboxes/images/base.Dockerfile).
NFT = "/usr/sbin/nft"
#: The init container's resources: nft needs a few MiB for a moment.
FENCE_MEMORY = "32Mi"
FENCE_CPU = "100m"
FENCE_DISK = "8Mi"


def ruleset(ports: tuple[int, ...]) -> str:
    """One nft transaction: any earlier table of ours goes, the fence comes, atomically."""
    return (
        f"add table inet {TABLE}; delete table inet {TABLE}; "
        f"table inet {TABLE} {{ "
        "chain egress { type filter hook output priority filter; policy drop; "
        'oif "lo" accept; ct state established,related accept; reject with icmpx admin-prohibited; }; '
        "chain ingress { type filter hook input priority filter; policy drop; "
        f'iif "lo" accept; ct state established,related accept; tcp dport {{ {", ".join(map(str, ports))} }} accept; }}; '
        "}"
    )


def fence_container(*, image: str, ports: tuple[int, ...]) -> dict[str, Any]:
    """The pod's init container that writes the ruleset (the unit's own image, which has nft)."""
    resources = {"memory": FENCE_MEMORY, "cpu": FENCE_CPU, "ephemeral-storage": FENCE_DISK}
    return {
        "name": "fence",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": [NFT, ruleset(ports)],
        "resources": {"requests": dict(resources), "limits": dict(resources)},
        "securityContext": {
            "runAsUser": 0,
            "runAsGroup": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
