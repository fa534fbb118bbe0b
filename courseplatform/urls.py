"""Top-level URLs: pages of each app, accounts, i18n switch, health."""

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import cache_page
from django.views.i18n import JavaScriptCatalog

from courseplatform.health import healthz

urlpatterns = [
    path("", include("lessons.urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("author/", include("lessons.authoring_urls")),
    path("accounts/", include("courseplatform.accounts.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # The live modules' strings; cached per language (the page asks with ?lang= so a switch is not served stale).
    path("jsi18n/", cache_page(3600)(JavaScriptCatalog.as_view()), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
