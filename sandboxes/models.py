"""A learner's sandbox: one broker of one kind, and where it is in its life."""

from django.conf import settings
from django.db import models
from django.db.models import Q


class State(models.TextChoices):
    REQUESTED = "requested"
    PROVISIONING = "provisioning"
    READY = "ready"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


#: States in which a sandbox holds (or is about to hold) a running unit.
ACTIVE_STATES = (State.REQUESTED, State.PROVISIONING, State.READY, State.STOPPING)


class Purpose(models.TextChoices):
    LEARNER = "learner"  # a learner's (or instructor's) own broker, one per kind
    POOL = "pool"  # started ahead, waiting for a learner to claim it
    VERIFY = "verify"  # a throwaway broker that proves an exercise (check fails empty, passes solved)


class Sandbox(models.Model):
    purpose = models.CharField(max_length=8, choices=Purpose.choices, default=Purpose.LEARNER)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="sandboxes",
        null=True,
        blank=True,
        help_text="empty while the sandbox waits in the warm pool",
    )
    broker = models.CharField(max_length=16)
    state = models.CharField(max_length=16, choices=State.choices, default=State.REQUESTED)
    stage = models.CharField(max_length=32, blank=True, help_text="the provisioning step being taken")
    error = models.TextField(blank=True)
    unit = models.CharField(max_length=64, blank=True, help_text="the backend's name of the running unit")
    connection = models.JSONField(default=dict, blank=True, help_text="environment a cell receives")
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "broker"],
                condition=Q(state__in=ACTIVE_STATES, purpose="learner"),
                name="one_active_sandbox_per_broker",
            )
        ]
        indexes = [models.Index(fields=["state"])]

    def __str__(self) -> str:
        return f"sandbox {self.pk} ({self.broker}, {self.state})"


class KeptState(models.Model):
    """A learner's broker data kept at a stop, for the next start of the same broker kind (one per user and kind).

    ``key`` names the data to the backend (a disk image under SANDBOX_ROOT/.kept for the process
    and docker backends). While a sandbox runs on the data, ``sandbox`` is that sandbox and the
    data lives in its unit; the stop keeps it again (or not, and the record goes).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kept_states")
    broker = models.CharField(max_length=16)
    key = models.CharField(max_length=128, help_text="the backend's name of the kept data")
    size_bytes = models.BigIntegerField(default=0, help_text="what the data takes on the host's disk")
    saved_at = models.DateTimeField(help_text="when the broker whose data this is stopped")
    sandbox = models.ForeignKey(
        Sandbox,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="the sandbox started on this data, while it lives",
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "broker"], name="one_kept_state_per_broker")]

    def __str__(self) -> str:
        return f"kept {self.broker} of user {self.user_id} ({self.saved_at:%Y-%m-%d %H:%M})"


class QueuedRequest(models.Model):
    """A learner's place in the admission queue for one broker kind (services/admission.py).

    Kept in the database, not in Redis: a Redis that restarts empty (it keeps nothing on disk)
    must not cost a waiting learner their place. ``asked_at`` orders the queue (seconds since the
    epoch of the first ask; 0 for a reset giving back the slot it just held, which goes first).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    broker = models.CharField(max_length=16)
    asked_at = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "broker"], name="one_place_per_broker")]
        indexes = [models.Index(fields=["asked_at", "id"])]

    def __str__(self) -> str:
        return f"user {self.user_id} waits for {self.broker} since {self.asked_at:.0f}"


class WarmBooking(models.Model):
    """An instructor's class at a time: brokers to have warm in the pool when it starts (services/bookings.py).

    ``brokers`` maps each broker kind to the sandboxes wanted ready at ``starts_at``; the pool keeps
    them from a lead time before the start until a while after it (SANDBOX_BOOKING_LEAD_S, _HOLD_S).
    """

    course_slug = models.SlugField(max_length=64, help_text="the course whose class view lists it")
    label = models.CharField(max_length=200, help_text="what the class view calls it (the chapter)")
    brokers = models.JSONField(default=dict, help_text="broker kind -> sandboxes wanted warm")
    learners = models.PositiveIntegerField()
    starts_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["starts_at"])]
        ordering = ["starts_at", "pk"]

    def __str__(self) -> str:
        return f"{self.label}: {self.learners} learners at {self.starts_at:%Y-%m-%d %H:%M}"
