from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "courseplatform.accounts"
    label = "accounts"

    def ready(self) -> None:
        from courseplatform import checks  # noqa: F401  (registers the deployment checks)
