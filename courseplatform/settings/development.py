"""Development, the embedded default of `make run` and manage.py: DEBUG on, a public key, demo users.

Safe only on this machine: a system check (courseplatform.checks) warns when these settings
are served on an address other than loopback.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *
from .base import env

DEBUG = env.bool("DEBUG", default=True)
DEV_SECRET_KEY = "dev-only-insecure-key-change-me"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("DEBUG is off but SECRET_KEY is not set: set SECRET_KEY in the environment.")
DEMO_USERS_ALLOWED = True
