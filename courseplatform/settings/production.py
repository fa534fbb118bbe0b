"""Production: secrets come from the environment only, and DEBUG can never be on."""

from django.core.exceptions import ImproperlyConfigured

from .base import *
from .base import env

if env.bool("DEBUG", default=False):
    raise ImproperlyConfigured("DEBUG must be off in production (unset DEBUG or set DEBUG=false).")
DEBUG = False
try:
    SECRET_KEY = env.str("SECRET_KEY")
except ImproperlyConfigured as exc:
    raise ImproperlyConfigured("Set SECRET_KEY in the environment: production has no default key.") from exc
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
