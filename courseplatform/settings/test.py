"""Settings for the test suite: fast hashing and the same real services as production."""

from .base import *
from .base import DATABASES

SECRET_KEY = "test-only-key"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
# Many tests log in from one address within a minute; the throttling tests set their own rates.
LOGIN_RATE_PER_IP = LOGIN_RATE_PER_USERNAME = SIGNUP_RATE_PER_IP = "10000/m"

# Small disk caps: every unit of the suite runs under one, and tests/security/test_disk_cap.py fills it quickly.
SANDBOX_DISK_MB = {"default": 128, "kafka": 128, "rabbitmq": 128}

# tests/services.py points these at the suite's own Postgres and Redis. The test database keeps the
# name DATABASE_URL gives, so the worker and the ASGI server (which read DATABASE_URL) open it too.
DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"]}

# Serve static files straight from the source folders, as in development (no collectstatic).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
