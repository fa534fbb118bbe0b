"""manage.py demo_users: a demo learner and a demo instructor, under the development settings only."""

from django.core.management.base import BaseCommand, CommandError

from courseplatform.accounts.demo import DemoUsersRefused, demo_users_ensure


class Command(BaseCommand):
    help = "Create the demo learner and instructor if they do not exist (development settings only)."

    def handle(self, *args, **options):
        try:
            done = demo_users_ensure()
        except DemoUsersRefused as exc:
            raise CommandError(str(exc)) from exc
        for username, created in done:
            self.stdout.write(f"{username}: {'created' if created else 'exists'}")
