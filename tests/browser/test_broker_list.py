"""The page's scripts name brokers from the server's registry, not from a list of their own.

A test-only broker kind is registered in this process; the chapter page this process
renders for it (the live server's page, with the registry extended) is what Chromium
loads, with the live server's scripts and socket. The learner's panel then names the
chapter's broker by the registry's short label.
"""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse
from playwright.sync_api import expect

from tests.sandboxes.test_broker_list import LABEL, NAME, SHORT, broker_kinds_of, pigeon, pigeon_course  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.usefixtures("pigeon_course")
def test_the_panel_names_a_registered_broker_by_the_servers_label(live_server_url, page_as, page_errors, learner):
    client = Client()
    client.force_login(learner)
    path = reverse("lessons:chapter", kwargs={"course": "pigeons", "chapter": "pigeons-1"})
    html = client.get(path).content.decode()
    assert {"name": NAME, "label": LABEL, "short": SHORT} in broker_kinds_of(html)

    page = page_as(learner)
    # The live server's own response (its headers, cookies), with the body this process rendered.
    page.route(live_server_url + path, lambda route: route.fulfill(response=route.fetch(), body=html))
    page.goto(live_server_url + path)
    expect(page.locator(f".badge.broker-{NAME}")).to_have_text(LABEL)
    scope = page.locator(".msg-scope option[value=chapter]")
    expect(scope).to_have_text(f"брокеры главы: {SHORT}")
    # Chromium treats a document served by a route as outside the local network and refuses its socket
    # to 127.0.0.1; the socket is not what this test is about, any other error is.
    assert [e for e in page_errors if "ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS" not in e] == []
