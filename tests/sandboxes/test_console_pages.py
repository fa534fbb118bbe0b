"""The console's own pages, where there is nothing to relay: no console for the broker, no sandbox, a start."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import Client

from sandboxes.models import Sandbox, State

pytestmark = pytest.mark.django_db


@pytest.fixture
def client(learner) -> Client:
    client = Client()
    client.force_login(learner)
    return client


def test_kafka_says_why_there_is_no_console_in_the_readers_language_and_activemq_offers_its_own(client):
    page = client.get("/sandboxes/kafka/ui/").content.decode()
    assert "У Kafka нет своей веб-консоли" in page and "kafbat/kafka-ui" in page and "панель «Сообщения»" in page
    response = client.get("/sandboxes/activemq/ui/")
    assert response.status_code == 404 and "/sandboxes/activemq/console/start" in response.content.decode()
    assert "нет веб-консоли" in client.get("/sandboxes/redis/ui/").content.decode()
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    page = client.get("/sandboxes/kafka/ui/").content.decode()
    assert "Kafka has no web console of its own" in page and "Messages panel" in page
    assert client.get("/sandboxes/kafka/ui/api/clusters").status_code == 404
    assert client.get("/sandboxes/no-such-broker/ui/").status_code == 404


def test_a_console_without_its_sandbox_offers_to_start_it_and_shows_the_start(client, learner, monkeypatch):
    queued = []
    monkeypatch.setattr("sandboxes.services.jobs.job_enqueue", lambda name, pk: queued.append((name, pk)))
    response = client.get("/sandboxes/rabbitmq/ui/")
    assert response.status_code == 404
    assert "не запущена" in response.content.decode() and "/sandboxes/rabbitmq/console/start" in response.content.decode()

    response = client.post("/sandboxes/rabbitmq/console/start")
    assert response.status_code == 302 and response["Location"] == "/sandboxes/rabbitmq/ui/"
    sandbox = Sandbox.objects.get(user=learner, broker="rabbitmq")
    assert sandbox.state == State.REQUESTED

    Sandbox.objects.filter(pk=sandbox.pk).update(state=State.PROVISIONING, stage="starting")
    response = client.get("/sandboxes/rabbitmq/ui/")
    page = response.content.decode()
    assert response.status_code == 503 and response["Retry-After"] == "2"
    assert "Песочница запускается: запуск брокера" in page and 'http-equiv="refresh"' in page and "<progress" in page
