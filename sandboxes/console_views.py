"""Pages of the broker's own web console: the proxy at ``/sandboxes/<broker>/ui/…`` and its "start the sandbox" form.

Thin edges over sandboxes/console_proxy.py. The sandbox is always the session user's
own learner sandbox of the broker in the path: another user's console has no route
here (they reach their own, or the page saying theirs is not running, a 404).
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext, gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import agent_client, selectors
from .activity import activity_note
from .brokers import BROKERS, get_broker
from .console_proxy import MAX_REQUEST_BODY, console_prefix, console_relay, console_request_headers, console_target
from .models import State
from .payloads import STAGE_LABELS, STAGE_PROGRESS
from .services.actions import sandbox_ensure
from .services.lifecycle import SandboxError

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NO_CONSOLE = gettext_lazy("У этого брокера нет веб-консоли.")
NOT_ANSWERING = gettext_lazy("Консоль брокера не отвечает. Если песочница только что остановилась, запустите её снова.")


def _kind_or_404(broker: str):
    if broker not in BROKERS:
        raise Http404
    return get_broker(broker)


def _page(request: HttpRequest, broker: str, *, status: int, sandbox=None, note: str = "", error: str = "") -> HttpResponse:
    starting = sandbox is not None and sandbox.state in (State.REQUESTED, State.PROVISIONING)
    context = {
        "broker": broker,
        "label": gettext(BROKERS[broker].label),
        "has_console": get_broker(broker).console is not None,
        "note": note,
        "error": error or (gettext(sandbox.error) if sandbox is not None and sandbox.state == State.FAILED else ""),
        "starting": starting,
        "stage": gettext(STAGE_LABELS.get(sandbox.stage, sandbox.stage)) if starting else "",
        "progress": round(STAGE_PROGRESS.get(sandbox.stage, 0.0) * 100) if starting else 0,
        "start_url": reverse("sandboxes:console_start", args=[broker]),
    }
    response = render(request, "sandboxes/console.html", context, status=status)
    if starting:
        response["Retry-After"] = "2"
    return response


@csrf_exempt  # the console's own requests carry no platform token; unsafe methods are held to this origin below
@login_required
async def console_ui(request: HttpRequest, broker: str, rest: str = "") -> HttpResponse:
    """Relay one request of the user's own console, or say why there is none (not running, starting, no console)."""
    if request.method not in SAFE_METHODS and request.headers.get("Origin") != f"{request.scheme}://{request.get_host()}":
        # Exempt from the CSRF token (the console's script has none), so a change must come from this site:
        # a page elsewhere may post here with the learner's cookies, but cannot send this Origin.
        return HttpResponse(status=403)
    kind = _kind_or_404(broker)
    user = await request.auser()
    if kind.console is None:
        return await sync_to_async(_page)(
            request,
            broker,
            status=200 if not rest else 404,
            note=gettext(kind.console_note) if kind.console_note else str(NO_CONSOLE),
        )
    sandbox = await sync_to_async(selectors.sandbox_active_of)(user_id=user.id or 0, broker=broker)
    if sandbox is None or sandbox.state != State.READY:
        starting = sandbox is not None and sandbox.state in (State.REQUESTED, State.PROVISIONING)
        return await sync_to_async(_page)(request, broker, status=503 if starting else 404, sandbox=sandbox)
    scope = getattr(request, "scope", None) or {}
    raw_path = scope.get("raw_path") or request.get_full_path(force_append_slash=False).split("?", 1)[0].encode()
    target = console_target(broker=broker, raw_path=raw_path, query=request.META.get("QUERY_STRING", ""))
    if target is None:
        raise Http404
    if request.method not in SAFE_METHODS:
        activity_note(sandbox)  # what the learner changes in the console, not its page's polling
    body = request.body if int(request.headers.get("Content-Length") or 0) <= MAX_REQUEST_BODY else None
    if body is None:
        return HttpResponse(status=413)
    try:
        answer = await console_relay(
            sandbox=sandbox,
            kind=kind,
            method=request.method or "GET",
            target=target,
            headers=console_request_headers(request.headers, cookies=request.COOKIES, session_cookie=kind.console.session_cookie),
            body=body,
        )
    except (agent_client.AgentUnavailable, ValueError) as exc:
        logger.info(
            "console of sandbox %s not reached: %s", sandbox.pk, exc, extra={"sandbox_id": sandbox.pk, "user_id": user.pk}
        )
        return await sync_to_async(_page)(request, broker, status=502, error=str(NOT_ANSWERING))
    response = HttpResponse(answer.body, status=answer.status)
    del response["Content-Type"]
    for name, value in answer.headers:
        response[name] = value
    if answer.csp is not None:
        response["Content-Security-Policy"] = answer.csp
    # The console's page keeps its own policy (RabbitMQ's needs eval); the platform's would break it.
    response._csp_exempt = True  # type: ignore[attr-defined]
    for name, value in answer.cookies.items():
        response.set_cookie(name, value, path=console_prefix(broker=broker), samesite="Strict", secure=request.is_secure())
    if answer.session is not None:
        name, value = answer.session
        response.set_cookie(
            name, value, path=console_prefix(broker=broker), samesite="Strict", secure=request.is_secure(), httponly=True
        )
    return response


@require_POST
@login_required
def console_start(request: HttpRequest, broker: str) -> HttpResponse:
    """Start the user's sandbox of ``broker`` (or keep the one starting) and go back to its console page."""
    _kind_or_404(broker)
    try:
        sandbox_ensure(user_id=request.user.id or 0, broker=broker)
    except SandboxError as exc:
        return _page(request, broker, status=429, error=str(exc))
    return HttpResponseRedirect(console_prefix(broker=broker) + "/")
