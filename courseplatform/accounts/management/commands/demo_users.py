"""manage.py demo_users: a demo learner and a demo instructor; existing ones are left as they are."""

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand

from courseplatform.accounts.roles import INSTRUCTOR_GROUP

DEMO_USERS = (("learner", "learner-demo-pass", False), ("teacher", "teacher-demo-pass", True))


class Command(BaseCommand):
    help = "Create the demo learner and instructor if they do not exist."

    def handle(self, *args, **options):
        for username, password, instructor in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.save()
            if instructor:
                user.groups.add(Group.objects.get(name=INSTRUCTOR_GROUP))
            self.stdout.write(f"{username}: {'created' if created else 'exists'}")
