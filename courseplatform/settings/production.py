"""Production: secrets come from the environment only, DEBUG can never be on, no demo users."""

from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from .base import *
from .base import DATABASES, REDIS_URL, env

# Django's own deployment check asks for at least 50 characters and 5 different ones.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE = 5
KNOWN_KEYS = {"dev-only-insecure-key-change-me", "test-only-key"}

if env.bool("DEBUG", default=False):
    raise ImproperlyConfigured("DEBUG must be off in production (unset DEBUG or set DEBUG=false).")
DEBUG = False
try:
    SECRET_KEY = env.str("SECRET_KEY")
except ImproperlyConfigured as exc:
    raise ImproperlyConfigured("Set SECRET_KEY in the environment: production has no default key.") from exc
if SECRET_KEY in KNOWN_KEYS or SECRET_KEY.startswith("django-insecure"):
    raise ImproperlyConfigured("SECRET_KEY is a published development key: generate a new one for production.")
if len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE:
    raise ImproperlyConfigured(
        f"SECRET_KEY is too weak: use at least {SECRET_KEY_MIN_LENGTH} random characters "
        '(python -c "import secrets; print(secrets.token_urlsafe(50))").'
    )
if not urlsplit(REDIS_URL).password:
    raise ImproperlyConfigured("REDIS_URL has no password: production's Redis must require one (redis://:PASSWORD@host:6379/0).")
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Production runs on Postgres: set DATABASE_URL=postgres://USER:PASSWORD@HOST:5432/NAME.")
DEMO_USERS_ALLOWED = False
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
SANDBOX_BACKEND = env.str("SANDBOX_BACKEND", default="sandboxes.backends.docker.DockerBackend")

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
