"""Top-level URLs: pages of each app, accounts, i18n switch, health."""

from django.contrib import admin
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.i18n import JavaScriptCatalog

from courseplatform.health import healthz

urlpatterns = [
    path("", include("lessons.urls")),
    path("author/", include("lessons.authoring_urls")),
    path("accounts/", include("courseplatform.accounts.urls")),
    path("sandboxes/", include("sandboxes.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # The live modules' strings; browsers keep them a while (the page asks with ?lang=, so a switch is never stale).
    # Not in the server cache: that one holds JSON only, and a response is not JSON.
    path("jsi18n/", cache_control(max_age=600)(JavaScriptCatalog.as_view()), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]
