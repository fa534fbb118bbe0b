"""Waiting on a sandbox pod with a watch (never by polling): until its agent is ready, or until it is gone.

A pod that ends, cannot pull its image or stays silent past AGENT_START_S is an error
that names why and shows the last log lines of the container at fault (the agent's, or the
network fence's when the init step failed: the agent never starts without its fence).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

#: From create to a ready agent: pulling the image on a node that has not got it is most of it.
AGENT_START_S = 180.0
REMOVE_S = 60.0
#: One request to the API server; a watch's own limit is set per call.
REQUEST_S = 30
#: What a pod's container says when it will not start on its own (restartPolicy is Never).
STUCK_REASONS = frozenset(
    {"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError", "CreateContainerError"}
)
POD_ENDED = "The sandbox pod ended ({reason}) before its agent answered. Its last lines:\n{logs}"
FENCE_FAILED = (
    "The sandbox pod's network fence could not be set up ({reason}); its agent was not started. Its last lines:\n{logs}"
)
POD_STUCK = "The sandbox pod cannot start: {reason}: {message}"
POD_SILENT = "The sandbox agent was not ready within {seconds:.0f} s (pod phase {phase}). Its last lines:\n{logs}"
NOT_REMOVED = "The sandbox pod {name} was not removed within {seconds:.0f} s"


class PodWatch:
    """The pods of one namespace, through one CoreV1Api."""

    def __init__(self, core: Any, namespace: str) -> None:
        self.core, self.namespace = core, namespace

    def events(self, name: str, deadline: float) -> Iterator[tuple[str, Any]]:
        """("ADDED"/"MODIFIED"/"DELETED", pod) for the one pod, starting with its state now (None: no pod)."""
        listed = self.core.list_namespaced_pod(self.namespace, field_selector=f"metadata.name={name}", _request_timeout=REQUEST_S)
        yield ("LISTED", listed.items[0] if listed.items else None)
        version = listed.metadata.resource_version
        while time.monotonic() < deadline:
            watcher = watch.Watch()
            seconds = max(1, int(deadline - time.monotonic()))
            try:
                for event in watcher.stream(
                    self.core.list_namespaced_pod,
                    self.namespace,
                    field_selector=f"metadata.name={name}",
                    resource_version=version,
                    timeout_seconds=seconds,
                    _request_timeout=seconds + REQUEST_S,
                ):
                    pod = event["object"]
                    version = pod.metadata.resource_version
                    yield (event["type"], pod)
            except ApiException as exc:
                if exc.status != 410:  # 410: our version is too old; list again from now
                    raise
                listed = self.core.list_namespaced_pod(
                    self.namespace, field_selector=f"metadata.name={name}", _request_timeout=REQUEST_S
                )
                yield ("LISTED", listed.items[0] if listed.items else None)
                version = listed.metadata.resource_version
            finally:
                watcher.stop()

    def wait_ready(self, name: str) -> None:
        """Return once the pod's agent passes its readiness probe; raise when it ends or cannot start."""
        deadline = time.monotonic() + AGENT_START_S
        phase = "unknown"
        for kind, pod in self.events(name, deadline):
            if pod is None or kind == "DELETED":
                raise RuntimeError(POD_ENDED.format(reason="removed", logs=""))
            phase = pod.status.phase or phase
            if pod_ready(pod):
                return
            failed_init = init_failed(pod)
            if failed_init is not None:
                container, reason = failed_init
                raise RuntimeError(FENCE_FAILED.format(reason=reason, logs=self.logs(name, container)))
            terminated = pod_terminated(pod)
            if terminated is not None or phase in ("Failed", "Succeeded"):
                reason = f"exit status {terminated.exit_code}" if terminated is not None else phase
                raise RuntimeError(POD_ENDED.format(reason=reason, logs=self.logs(name)))
            for status in (pod.status.init_container_statuses or []) + (pod.status.container_statuses or []):
                waiting = status.state.waiting if status.state is not None else None
                if waiting is not None and waiting.reason in STUCK_REASONS:
                    raise RuntimeError(POD_STUCK.format(reason=waiting.reason, message=waiting.message or ""))
        raise RuntimeError(POD_SILENT.format(seconds=AGENT_START_S, phase=phase, logs=self.logs(name)))

    def wait_gone(self, name: str, ours: Callable[[Any], bool]) -> None:
        """Return once the pod is gone (or is no longer ours: another of the name)."""
        deadline = time.monotonic() + REMOVE_S
        for kind, pod in self.events(name, deadline):
            if pod is None or kind == "DELETED" or not ours(pod):
                return
        raise RuntimeError(NOT_REMOVED.format(name=name, seconds=REMOVE_S))

    def logs(self, name: str, container: str = "agent") -> str:
        with contextlib.suppress(ApiException, OSError):
            return str(
                self.core.read_namespaced_pod_log(
                    name, self.namespace, container=container, tail_lines=20, _request_timeout=REQUEST_S
                )
            )
        return "(no logs)"


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def init_failed(pod: Any) -> tuple[str, str] | None:
    """(container, why) for an init container that ended in failure; with restartPolicy Never the pod is done."""
    for status in pod.status.init_container_statuses or []:
        terminated = status.state.terminated if status.state is not None else None
        if terminated is not None and terminated.exit_code != 0:
            return status.name, f"exit status {terminated.exit_code}"
    return None


def pod_terminated(pod: Any) -> Any:
    for status in pod.status.container_statuses or []:
        if status.state is not None and status.state.terminated is not None:
            return status.state.terminated
    return None


def pod_exit_status(pod: Any) -> int | None:
    """What ``poll`` says of a pod: None while it runs (or is scheduled), its exit status once ended."""
    terminated = pod_terminated(pod)
    if terminated is not None:
        return int(terminated.exit_code)
    if pod.status.phase in ("Pending", "Running"):
        return None
    return 1  # Failed or Succeeded without a container status: ended all the same
