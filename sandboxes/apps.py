"""The sandboxes app: its system checks and signal receivers are registered when the app is ready."""

from django.apps import AppConfig
from django.core import checks


class SandboxesConfig(AppConfig):
    name = "sandboxes"
    verbose_name = "Sandboxes"

    def ready(self) -> None:
        from . import checks as sandbox_checks
        from .services import kept  # noqa: F401  (its receiver deletes kept data with its record)

        for check in (
            sandbox_checks.check_backend,
            sandbox_checks.check_brokers,
            sandbox_checks.check_warm_pool,
            sandbox_checks.check_limits,
        ):
            checks.register(check, "sandboxes")
