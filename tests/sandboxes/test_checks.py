"""The sandbox settings are validated by Django's system checks: each bad value is named, the defaults pass."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from sandboxes import brokers

DOCKER = "sandboxes.backends.docker.DockerBackend"
KUBERNETES = "sandboxes.backends.kubernetes.KubernetesBackend"
PROCESS = "sandboxes.backends.process.ProcessBackend"


def sandbox_errors() -> dict[str, str]:
    """Check id -> message of every sandboxes check that fails now."""
    return {m.id: m.msg for m in run_checks(tags=["sandboxes"]) if m.id and m.id.startswith("sandboxes.")}


def test_the_shipped_settings_pass_every_sandbox_check(settings):
    assert sandbox_errors() == {}
    settings.SANDBOX_BACKEND = DOCKER
    assert sandbox_errors() == {}
    settings.SANDBOX_BACKEND = KUBERNETES
    assert sandbox_errors() == {}


def test_a_backend_path_that_does_not_import_stops_manage_py_check(settings):
    settings.SANDBOX_BACKEND = "sandboxes.backends.nowhere.Backend"
    with pytest.raises(SystemCheckError, match=r"sandboxes\.E001"):
        call_command("check")


def test_a_backend_that_is_not_a_sandbox_backend_is_refused(settings):
    settings.SANDBOX_BACKEND = "sandboxes.models.Sandbox"
    assert list(sandbox_errors()) == ["sandboxes.E002"]


def test_a_broker_kind_that_does_not_import_is_named(monkeypatch):
    # The registry is code, not a setting: a broken entry is made on purpose here.
    monkeypatch.setitem(brokers.BROKERS, "mqtt", brokers.Broker("sandboxes.brokers.mqtt.Mosquitto", "MQTT"))
    assert "'mqtt'" in sandbox_errors()["sandboxes.E003"]


@pytest.mark.parametrize(
    ("pool", "error"),
    [({"mqtt": 1}, "sandboxes.E004"), ("kafka=1", "sandboxes.E004"), ({"kafka": -1}, "sandboxes.E005")],
)
def test_a_warm_pool_of_unknown_brokers_or_negative_counts_is_refused(settings, pool, error):
    settings.SANDBOX_WARM_POOL = pool
    assert list(sandbox_errors()) == [error]


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("SANDBOX_QUOTA_PER_USER", 0, "sandboxes.E006"),
        ("SANDBOX_IDLE_TIMEOUT_S", -5, "sandboxes.E007"),
        ("SANDBOX_IDLE_TIMEOUT_S", "30m", "sandboxes.E007"),
        ("SANDBOX_DISK_MB", {"default": 256, "kafka": 16}, "sandboxes.E008"),
        ("SANDBOX_DISK_MB", {"default": 256, "mqtt": 512}, "sandboxes.E008"),
    ],
)
def test_a_quota_idle_timeout_or_disk_cap_too_small_is_refused(settings, setting, value, error):
    setattr(settings, setting, value)
    assert list(sandbox_errors()) == [error]


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("SANDBOX_DOCKER_MEMORY_MB", 256, "sandboxes.E101"),
        ("SANDBOX_DOCKER_PIDS", 64, "sandboxes.E102"),
        ("SANDBOX_DOCKER_CPUS", 0.0, "sandboxes.E103"),
        ("SANDBOX_DOCKER_CPUS", 10_000.0, "sandboxes.E103"),
    ],
)
def test_docker_limits_too_small_for_a_broker_are_refused(settings, setting, value, error):
    settings.SANDBOX_BACKEND = DOCKER
    setattr(settings, setting, value)
    assert list(sandbox_errors()) == [error]


def test_docker_limits_are_not_checked_when_the_process_backend_runs(settings):
    settings.SANDBOX_BACKEND = PROCESS
    settings.SANDBOX_DOCKER_MEMORY_MB = 256
    assert sandbox_errors() == {}


def test_a_misspelt_isolation_mode_is_refused_not_taken_for_none(settings):
    settings.SANDBOX_BACKEND = PROCESS
    settings.SANDBOX_ISOLATION = "netsn"
    assert list(sandbox_errors()) == ["sandboxes.E111"]


@pytest.mark.parametrize(
    ("setting", "value", "error"),
    [
        ("SANDBOX_INSTANCE", "Broker_Academy", "sandboxes.E121"),
        ("SANDBOX_K8S_IMAGE", "broker-academy/sandbox:latest", "sandboxes.E122"),
        ("SANDBOX_K8S_TOLERATIONS", ["dedicated=sandboxes:NoSchdule"], "sandboxes.E124"),
        ("SANDBOX_K8S_TOLERATIONS", ["=sandboxes:NoSchedule"], "sandboxes.E124"),
    ],
)
def test_kubernetes_names_images_and_tolerations_that_cannot_work_are_refused(settings, setting, value, error):
    settings.SANDBOX_BACKEND = KUBERNETES
    setattr(settings, setting, value)
    assert list(sandbox_errors()) == [error]


def test_kubernetes_tolerations_in_kubectls_taint_form_are_accepted(settings):
    settings.SANDBOX_BACKEND = KUBERNETES
    settings.SANDBOX_K8S_TOLERATIONS = ["dedicated=sandboxes:NoSchedule", "pool:NoExecute"]
    assert sandbox_errors() == {}
