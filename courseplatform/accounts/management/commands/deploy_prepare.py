"""manage.py deploy_prepare [--course] [--wait SECONDS]: migrate (and load the course) before a pod starts.

Every platform pod of deploy/kubernetes/ runs it in an init container. On Postgres the pods take
turns under an advisory lock, so two never migrate at once and the later ones find nothing to do;
it waits for the database to answer first, so a pod started before its database is not failed.
"""

import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError, connection

#: pg_advisory_lock's key for this command: any constant the platform uses for nothing else.
LOCK_KEY = 0x62612D6D69677261  # "ba-migra"
NO_DATABASE = "the database did not answer within {seconds:.0f} s: {error}"


class Command(BaseCommand):
    help = "Migrate, and with --course load the course, once per deploy whichever pod comes first."

    def add_arguments(self, parser):
        parser.add_argument("--course", action="store_true", help="also load settings.COURSE_DIRS (course_load)")
        parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the database (default 120)")

    def handle(self, *args, course, wait, **options):
        deadline = time.monotonic() + wait
        while True:
            try:
                connection.ensure_connection()
                break
            except OperationalError as exc:
                if time.monotonic() > deadline:
                    raise CommandError(NO_DATABASE.format(seconds=wait, error=exc)) from exc
                time.sleep(1)
        locked = connection.vendor == "postgresql"
        if locked:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
        try:
            call_command("migrate", interactive=False, verbosity=options["verbosity"])
            if course:
                call_command("course_load", verbosity=options["verbosity"])
        finally:
            if locked:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
