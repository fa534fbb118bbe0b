"""manage.py sandbox_stop_all: stop every sandbox unit of this platform (used when make run ends)."""

from django.core.management.base import BaseCommand

from sandboxes.services.reconcile import sandboxes_stop_all


class Command(BaseCommand):
    help = "Stop every sandbox unit this platform instance owns."

    def handle(self, *args, **options):
        self.stdout.write(f"stopped {sandboxes_stop_all()} unit(s)")
