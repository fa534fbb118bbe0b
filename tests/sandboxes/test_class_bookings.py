"""An instructor books a class (a chapter, a start, a number of learners) on the class view, and the warm
pool has the chapter's first broker ready for each learner when it starts, then lets go of it.

The pool's decisions against the run's real database and Redis; the test's transaction is rolled back,
so the provisions and stops a fill queues after commit are never sent (the bench's booked burst starts
them for real: bench/burst.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from lessons.course_io import course_import
from sandboxes.models import Purpose, Sandbox, State, WarmBooking
from sandboxes.services import pool
from tests.lessons.test_authoring import MINI

pytestmark = pytest.mark.django_db


@pytest.fixture
def mini(instructor, settings):
    settings.SANDBOX_WARM_POOL = {"nats": 1}
    settings.SANDBOX_WARM_POOL_DEMAND_WINDOW_S = 0  # no demand of other tests: only floors and bookings
    settings.SANDBOX_BOOKING_LEAD_S = 15 * 60
    settings.SANDBOX_BOOKING_HOLD_S = 30 * 60
    course = course_import(directory=MINI)
    course.instructors.add(instructor)
    return course


def local(moment) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%dT%H:%M")


def book(client, **form):
    return client.post(reverse("authoring:class_booking_create", kwargs={"course": "mini"}), form)


def pooled(broker: str) -> int:
    return Sandbox.objects.filter(purpose=Purpose.POOL, broker=broker).exclude(state=State.STOPPING).count()


def test_a_booked_class_warms_its_chapters_first_broker_for_each_learner_and_the_pool_lets_go_after(client, instructor, mini):
    client.force_login(instructor)
    soon = timezone.now() + timedelta(minutes=5)
    answer = book(client, chapter="live", starts_at=local(soon), learners="3")
    assert answer.status_code == 302, answer.content.decode()[:2000]
    booking = WarmBooking.objects.get()
    # The chapter's first cell runs on Kafka: that is what the class meets first, not every broker it names.
    assert booking.brokers == {"kafka": 3} and booking.course_slug == "mini"
    page = client.get(reverse("authoring:class", kwargs={"course": "mini"})).content.decode()
    assert "разогрев идёт" in page and "0 / 0 / 3" in page

    assert pool.sandbox_pool_sizes() == {"nats": 1, "kafka": 3}
    assert len(pool.sandbox_pool_fill()) == 4 and pooled("kafka") == 3
    # One learner has come and holds a Kafka of their own: two more are wanted, the third pooled one goes.
    arrived = User.objects.create_user("early", password="x")
    Sandbox.objects.create(user=arrived, broker="kafka", state=State.READY, purpose=Purpose.LEARNER)
    Sandbox.objects.filter(purpose=Purpose.POOL).update(state=State.READY, stage="ready")
    assert pool.sandbox_pool_sizes()["kafka"] == 2
    pool.sandbox_pool_fill()
    assert pooled("kafka") == 2
    page = client.get(reverse("authoring:class", kwargs={"course": "mini"})).content.decode()
    assert "2 / 1 / 3" in page, page[page.find("bookings") : page.find("bookings") + 2000]

    # The class has passed its window: the pool goes back to its floor, Kafka (not pooled by the setting) to none.
    WarmBooking.objects.update(starts_at=timezone.now() - timedelta(hours=1))
    assert pool.sandbox_pool_sizes() == {"nats": 1}
    pool.sandbox_pool_fill()
    assert pooled("kafka") == 0 and pooled("nats") == 1


def test_a_booking_later_waits_for_its_window_and_a_cancelled_one_warms_nothing(client, instructor, mini):
    client.force_login(instructor)
    later = timezone.now() + timedelta(hours=3)
    assert book(client, chapter="first", starts_at=local(later), learners="20").status_code == 302
    assert pool.sandbox_pool_sizes() == {"nats": 1}
    page = client.get(reverse("authoring:class", kwargs={"course": "mini"})).content.decode()
    warm_from = timezone.localtime(WarmBooking.objects.get().starts_at - timedelta(minutes=15)).strftime("%H:%M")
    assert f"разогрев с {warm_from}" in page
    WarmBooking.objects.update(starts_at=timezone.now() + timedelta(minutes=10))
    assert pool.sandbox_pool_sizes() == {"nats": 20}
    booking = WarmBooking.objects.get()
    cancel = reverse("authoring:class_booking_cancel", kwargs={"course": "mini", "booking": booking.pk})
    assert client.post(cancel).status_code == 302
    assert pool.sandbox_pool_sizes() == {"nats": 1}
    assert client.post(cancel).status_code == 404


@pytest.mark.parametrize(
    ("form", "said"),
    [
        ({"chapter": "first", "learners": "0"}, "от 1 до 200"),
        ({"chapter": "first", "learners": "5000"}, "от 1 до 200"),
        ({"chapter": "first", "learners": "3", "past": "1"}, "уже прошло"),
        ({"chapter": "nowhere", "learners": "3"}, "Выберите главу"),
        ({"chapter": "first", "learners": "many"}, "Укажите время"),
    ],
    ids=["none", "too-many", "past", "no-chapter", "not-a-number"],
)
def test_a_wrong_booking_is_refused_with_what_to_fix_and_books_nothing(client, instructor, mini, form, said):
    client.force_login(instructor)
    moment = timezone.now() + (timedelta(days=-1) if form.pop("past", None) else timedelta(hours=1))
    answer = book(client, starts_at=local(moment), **form)
    assert answer.status_code == 400
    assert said in answer.content.decode()
    assert not WarmBooking.objects.exists()


def test_another_courses_instructor_can_neither_book_nor_cancel_this_class(client, mini):
    from django.contrib.auth.models import Group

    from courseplatform.accounts.roles import INSTRUCTOR_GROUP

    stranger = User.objects.create_user("stranger", password="x")
    stranger.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
    booking = WarmBooking.objects.create(
        course_slug="mini", label="1 x", brokers={"nats": 2}, learners=2, starts_at=timezone.now()
    )
    client.force_login(stranger)
    assert book(client, chapter="first", starts_at=local(timezone.now()), learners="3").status_code == 403
    cancel = reverse("authoring:class_booking_cancel", kwargs={"course": "mini", "booking": booking.pk})
    assert client.post(cancel).status_code == 403
    assert WarmBooking.objects.count() == 1
