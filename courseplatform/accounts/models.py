"""Invitations: the way in when sign-up is invite-only (SIGNUP_MODE=invite)."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def invitation_code() -> str:
    return secrets.token_urlsafe(12)


class Invitation(models.Model):
    code = models.CharField(_("код"), max_length=64, unique=True, default=invitation_code)
    note = models.CharField(_("для кого"), max_length=200, blank=True)
    uses_left = models.PositiveIntegerField(_("осталось регистраций"), default=1)
    expires_at = models.DateTimeField(_("действует до"), null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("приглашение")
        verbose_name_plural = _("приглашения")

    def __str__(self) -> str:
        return f"{self.code} ({self.uses_left})"


def _usable(code: str) -> models.QuerySet[Invitation]:
    now = timezone.now()
    return Invitation.objects.filter(code=code.strip(), uses_left__gt=0).filter(
        models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now)
    )


def invitation_usable(*, code: str) -> bool:
    return _usable(code).exists()


def invitation_use(*, code: str) -> bool:
    """Spend one use of the invitation ``code``; False when it does not exist, is used up or expired.

    One conditional UPDATE, so two sign-ups racing for the last use cannot both get it.
    """
    return bool(_usable(code).update(uses_left=F("uses_left") - 1))
