"""Sandbox backends, chosen by settings.SANDBOX_BACKEND (a dotted path), loaded on first use."""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from .base import SandboxBackend


@functools.cache
def get_backend() -> SandboxBackend:
    """The configured backend; a bad path raises ImproperlyConfigured naming the setting."""
    path = settings.SANDBOX_BACKEND
    try:
        cls = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(f"SANDBOX_BACKEND={path!r} cannot be imported: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, SandboxBackend)):
        raise ImproperlyConfigured(f"SANDBOX_BACKEND={path!r} is not a SandboxBackend subclass")
    return cls()


def _forget(*, setting: str, **_: object) -> None:
    if setting.startswith("SANDBOX_"):
        get_backend.cache_clear()


setting_changed.connect(_forget)
