"""``/metrics`` for Prometheus, behind a bearer token: in the web process through Django, and
in the Celery worker on a port of its own (``courseplatform/worker_metrics.py`` starts it).

The token is ``METRICS_TOKEN``; unset, neither endpoint exists (the web answers 404, the worker
opens no port). A request without it, or with another, gets 401; the comparison takes the same
time whatever the token sent.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, CollectorRegistry, exposition, make_wsgi_app, multiprocess
from prometheus_client.registry import Collector

from courseplatform.metrics import CeleryQueueDepthCollector
from sandboxes.metrics import SandboxStatesCollector

METRICS_PATH = "/metrics"
UNAUTHORIZED = 401


def metrics_token() -> str:
    """The configured token, or "" when the endpoints are off."""
    return str(getattr(settings, "METRICS_TOKEN", "") or "")


def metrics_authorized(authorization: str | None) -> bool:
    """Whether an Authorization header carries the token (``Bearer <token>``), compared in constant time."""
    token = metrics_token()
    scheme, _, given = (authorization or "").partition(" ")
    # compare_digest runs even for a missing or malformed header, so its time says nothing about the token.
    matches = hmac.compare_digest(given.strip().encode(), token.encode())
    return bool(token) and scheme.lower() == "bearer" and matches


class _ThisProcess(Collector):
    """The metrics this process observed (the default registry: histograms, counters, the process' own)."""

    def collect(self) -> Iterator[Any]:
        yield from REGISTRY.collect()


def metrics_registry(*, platform: bool) -> CollectorRegistry:
    """What one scrape reads: this process's metrics (all of a multiprocess server's processes when
    PROMETHEUS_MULTIPROC_DIR is set) and, with ``platform``, what is read from the database and Redis."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    if platform:
        registry.register(SandboxStatesCollector())
        registry.register(CeleryQueueDepthCollector())
    return registry


class MetricsEndpointMiddleware:
    """Answers ``/metrics`` before the rest of the stack; first in MIDDLEWARE.

    First, because Prometheus scrapes each web pod by its address, which ALLOWED_HOSTS does not
    list (and Prometheus cannot set the Host header): this path builds no URL from the Host, so
    the host check protects nothing here, and the token does. With no token it steps aside and
    the request is Django's like any other (a 404, as no URL is routed there).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path != METRICS_PATH or not metrics_token():
            return self.get_response(request)
        if not metrics_authorized(request.headers.get("Authorization")):
            return _unauthorized()
        registry = metrics_registry(platform=True)
        encoder, content_type = exposition.choose_encoder(request.headers.get("Accept", ""))
        return HttpResponse(encoder(registry), content_type=content_type)


def _unauthorized() -> HttpResponse:
    response = HttpResponse("a bearer token is required\n", status=UNAUTHORIZED, content_type="text/plain")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def worker_metrics_app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """The worker's WSGI app: ``/metrics`` of every process of the worker, behind the same token."""
    inner = make_wsgi_app(metrics_registry(platform=False))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METRICS_PATH:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not metrics_authorized(environ.get("HTTP_AUTHORIZATION")):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b"a bearer token is required\n"]
        return inner(environ, start_response)

    return app
