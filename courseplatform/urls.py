"""Top-level URLs: pages of each app, accounts, i18n switch, health."""

from django.contrib import admin
from django.urls import include, path

from courseplatform.health import healthz

urlpatterns = [
    path("", include("lessons.urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("author/", include("lessons.authoring_urls")),
    path("accounts/", include("courseplatform.accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
