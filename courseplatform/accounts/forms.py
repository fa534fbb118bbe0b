"""The sign-up form: a username, an e-mail and a password typed twice, plus what SIGNUP_MODE asks for.

SIGNUP_MODE is ``open`` (anyone), ``domain`` (an e-mail address in SIGNUP_ALLOWED_DOMAINS),
``invite`` (an invitation code) or ``closed``.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from .models import invitation_usable, invitation_use

BAD_DOMAIN = _("Регистрация открыта только для адресов в доменах: %(domains)s.")
BAD_INVITATION = _("Такого приглашения нет, оно истекло или уже использовано.")


class SignupForm(UserCreationForm):
    email = forms.EmailField(label=_("Эл. почта"), required=False)

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.mode = settings.SIGNUP_MODE
        if self.mode == "domain":
            self.fields["email"].required = True
            self.fields["email"].help_text = _("Адрес в одном из доменов: %(domains)s.") % {"domains": self.domains_text()}
        if self.mode == "invite":
            self.fields["invitation"] = forms.CharField(label=_("Код приглашения"), max_length=64)

    @staticmethod
    def domains_text() -> str:
        return ", ".join(settings.SIGNUP_ALLOWED_DOMAINS)

    def clean_email(self) -> str:
        email = self.cleaned_data.get("email", "")
        if self.mode == "domain":
            domain = email.rpartition("@")[2].lower()
            allowed = {d.lower().lstrip("@") for d in settings.SIGNUP_ALLOWED_DOMAINS}
            if domain not in allowed:
                raise forms.ValidationError(BAD_DOMAIN, params={"domains": self.domains_text()})
        return email

    def clean_invitation(self) -> str:
        code = self.cleaned_data["invitation"].strip()
        if not invitation_usable(code=code):
            raise forms.ValidationError(BAD_INVITATION)
        return code

    @transaction.atomic
    def save(self, commit: bool = True) -> User:
        # The invitation is spent in the same transaction as the user is made: both or neither.
        if self.mode == "invite" and not invitation_use(code=self.cleaned_data["invitation"]):
            self.add_error("invitation", BAD_INVITATION)
            raise InvitationRefused
        return super().save(commit=commit)


class InvitationRefused(Exception):
    """The invitation was valid when the form was read but another sign-up spent it first."""
