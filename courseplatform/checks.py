"""System checks of the deployment as a whole."""

from __future__ import annotations

import ipaddress
import os

from django.conf import settings
from django.core.checks import Tags, Warning, register

LOOPBACK_NAMES = {"localhost", "testserver"}


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@register(Tags.security, deploy=False)
def development_settings_exposed(app_configs, **kwargs):
    """Development settings (DEBUG, a public key, demo users) served beyond this machine."""
    if not settings.DEBUG and not settings.DEMO_USERS_ALLOWED:
        return []
    exposed = [h for h in settings.ALLOWED_HOSTS if not _loopback(h)]
    listen = os.environ.get("HOST", "")
    if listen and not _loopback(listen):
        exposed.append(f"HOST={listen}")
    if not exposed:
        return []
    return [
        Warning(
            "The development settings are reachable from other machines: " + ", ".join(exposed),
            hint="They have DEBUG on, a public SECRET_KEY and demo users with public passwords. "
            "Use DJANGO_SETTINGS_MODULE=courseplatform.settings.production for anything but this machine.",
            id="courseplatform.W001",
        )
    ]
