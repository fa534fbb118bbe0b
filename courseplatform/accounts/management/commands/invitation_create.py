"""manage.py invitation_create: an invitation code for SIGNUP_MODE=invite."""

from datetime import timedelta

from django.core.management.base import BaseCommand
from django.utils import timezone

from courseplatform.accounts.models import Invitation


class Command(BaseCommand):
    help = "Create an invitation code (for SIGNUP_MODE=invite) and print it."

    def add_arguments(self, parser):
        parser.add_argument("--uses", type=int, default=1, help="how many accounts it may create (default 1)")
        parser.add_argument("--days", type=int, default=14, help="days it stays valid (0: no expiry; default 14)")
        parser.add_argument("--note", default="", help="who it is for")

    def handle(self, *args, uses, days, note, **options):
        expires = timezone.now() + timedelta(days=days) if days else None
        invitation = Invitation.objects.create(uses_left=uses, expires_at=expires, note=note)
        self.stdout.write(invitation.code)
