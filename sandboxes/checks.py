"""System checks of the sandbox settings: the backend, the broker registry, the warm pool, the limits.

Registered in SandboxesConfig.ready(), so ``manage.py check`` (and every
management command that runs checks) names a bad value before a unit starts.
The configured backend then checks its own options (``check_settings``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.utils.module_loading import import_string

from .backends.base import SandboxBackend
from .brokers import BROKERS
from .brokers.base import BrokerKind

#: The smallest disk cap a broker starts under (its own watermarks sit below the cap).
MIN_DISK_MB = 64


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def check_backend(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """SANDBOX_BACKEND imports and names a SandboxBackend (E001, E002); then that backend's own checks."""
    path = settings.SANDBOX_BACKEND
    try:
        cls = import_string(path)
    except ImportError as exc:
        return [Error(f"SANDBOX_BACKEND={path!r} cannot be imported: {exc}", id="sandboxes.E001")]
    if not (isinstance(cls, type) and issubclass(cls, SandboxBackend)):
        return [Error(f"SANDBOX_BACKEND={path!r} is not a SandboxBackend subclass", id="sandboxes.E002")]
    return cls.check_settings()


def check_brokers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every broker kind in the registry imports and is a BrokerKind (E003)."""
    errors: list[CheckMessage] = []
    for name, entry in BROKERS.items():
        try:
            cls = import_string(entry.kind)
        except ImportError as exc:
            errors.append(Error(f"broker {name!r}: {entry.kind} cannot be imported: {exc}", id="sandboxes.E003"))
            continue
        if not (isinstance(cls, type) and issubclass(cls, BrokerKind)) or cls.name != name:
            errors.append(Error(f"broker {name!r}: {entry.kind} is not the BrokerKind named {name!r}", id="sandboxes.E003"))
    return errors


def check_warm_pool(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """SANDBOX_WARM_POOL maps known brokers to a count of zero or more (E004, E005)."""
    pool = settings.SANDBOX_WARM_POOL
    if not isinstance(pool, dict):
        return [Error(f"SANDBOX_WARM_POOL={pool!r}: expected broker=count pairs, e.g. kafka=1;nats=2", id="sandboxes.E004")]
    errors: list[CheckMessage] = []
    for broker, size in pool.items():
        if broker not in BROKERS:
            known = ", ".join(BROKERS)
            errors.append(Error(f"SANDBOX_WARM_POOL names an unknown broker {broker!r} (known: {known})", id="sandboxes.E004"))
        if not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
            errors.append(Error(f"SANDBOX_WARM_POOL[{broker!r}]={size!r}: a count of zero or more", id="sandboxes.E005"))
    return errors


def check_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The per-user quota and the idle timeout are positive whole numbers (E006, E007); disk caps (E008);
    the platform's capacity (E009)."""
    errors: list[CheckMessage] = []
    if not _positive_int(settings.SANDBOX_QUOTA_PER_USER):
        errors.append(
            Error(
                f"SANDBOX_QUOTA_PER_USER={settings.SANDBOX_QUOTA_PER_USER!r}: at least 1, or no learner gets a sandbox",
                id="sandboxes.E006",
            )
        )
    if not _positive_int(settings.SANDBOX_IDLE_TIMEOUT_S):
        errors.append(
            Error(
                f"SANDBOX_IDLE_TIMEOUT_S={settings.SANDBOX_IDLE_TIMEOUT_S!r}: seconds, at least 1, "
                "or every sandbox is reaped as soon as it is ready",
                id="sandboxes.E007",
            )
        )
    capacity = settings.SANDBOX_CAPACITY_MB
    smallest = min(entry.memory_mb for entry in BROKERS.values())
    if not (isinstance(capacity, int) and not isinstance(capacity, bool) and (capacity == 0 or capacity >= smallest)):
        errors.append(
            Error(
                f"SANDBOX_CAPACITY_MB={capacity!r}: 0 (from this machine's memory) or at least {smallest} (MB), "
                "or no sandbox ever starts",
                id="sandboxes.E009",
            )
        )
    for broker, size in settings.SANDBOX_DISK_MB.items():
        if broker != "default" and broker not in BROKERS:
            errors.append(Error(f"SANDBOX_DISK_MB names an unknown broker {broker!r}", id="sandboxes.E008"))
        elif not (_positive_int(size) and size >= MIN_DISK_MB):
            errors.append(Error(f"SANDBOX_DISK_MB[{broker!r}]={size!r}: at least {MIN_DISK_MB} (MB)", id="sandboxes.E008"))
    return errors
