"""/healthz: is the database answering, is Redis answering, is a Celery worker consuming.

``?checks=database,redis`` runs only those, ``?checks=`` none (the process answers): what a
Kubernetes probe asks (deploy/kubernetes/), so that a stopped worker does not take web pods out
of their Service, and a slow database does not get them restarted.
"""

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponseBadRequest, JsonResponse


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis() -> None:
    redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2).ping()


def _worker() -> None:
    from courseplatform.celery import app

    replies = app.control.ping(timeout=1.0)
    if not replies:
        raise RuntimeError("no Celery worker answered within 1 s")


CHECKS: dict[str, Callable[[], None]] = {"database": _database, "redis": _redis, "worker": _worker}


UNKNOWN_CHECK = "Unknown check {name!r}; the checks are: {known}."


def healthz(request: HttpRequest) -> JsonResponse | HttpResponseBadRequest:
    """200 with each check "ok" when all pass, 503 naming the failures otherwise (400: an unknown check)."""
    names = list(CHECKS)
    if "checks" in request.GET:
        names = [name for name in request.GET["checks"].split(",") if name]
        for name in names:
            if name not in CHECKS:
                return HttpResponseBadRequest(UNKNOWN_CHECK.format(name=name, known=", ".join(CHECKS)))
    results: dict[str, dict[str, object]] = {}
    for name in names:
        check = CHECKS[name]
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # any failure of a dependency is a health answer, not a crash
            results[name] = {"ok": False, "error": str(exc) or exc.__class__.__name__}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    healthy = all(r["ok"] for r in results.values())
    return JsonResponse({"ok": healthy, "checks": results}, status=200 if healthy else 503)
