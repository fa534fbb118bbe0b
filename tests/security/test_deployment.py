"""Settings that must not reach production, refused; the shared cache never unpickles."""

from __future__ import annotations

import pickle

import pytest
import redis
from django.conf import settings
from django.core.cache import cache

from tests.courseplatform.test_settings import settings_import

STRONG_KEY = "k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN"
PRODUCTION = {
    "ALLOWED_HOSTS": "example.org",
    "REDIS_URL": "redis://:s3cret@redis:6379/0",
    "DATABASE_URL": "postgres://ba:pw@db:5432/ba",
}


@pytest.mark.parametrize(
    "key",
    ["dev-only-insecure-key-change-me", "short-key", "a" * 60, "django-insecure-" + "x1y2z3" * 10],
    ids=["development-key", "short", "one-character", "django-insecure"],
)
def test_production_refuses_a_default_or_weak_secret_key(key):
    result = settings_import("courseplatform.settings.production", SECRET_KEY=key, **PRODUCTION)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_redis_without_a_password():
    result = settings_import(
        "courseplatform.settings.production", SECRET_KEY=STRONG_KEY, **{**PRODUCTION, "REDIS_URL": "redis://redis:6379/0"}
    )
    assert result.returncode != 0
    assert "REDIS_URL has no password" in result.stderr


def test_production_refuses_sqlite():
    result = settings_import(
        "courseplatform.settings.production", SECRET_KEY=STRONG_KEY, **{**PRODUCTION, "DATABASE_URL": "sqlite:///x.db"}
    )
    assert result.returncode != 0
    assert "Production runs on Postgres" in result.stderr


def test_production_accepts_a_strong_key_and_a_redis_password():
    result = settings_import("courseplatform.settings.production", SECRET_KEY=STRONG_KEY, **PRODUCTION)
    assert result.returncode == 0, result.stderr


def check_warnings(**env: str) -> str:
    import subprocess
    import sys

    clean = {k: v for k, v in __import__("os").environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "HOST")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**clean, "DJANGO_SETTINGS_MODULE": "courseplatform.settings.development", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.stdout + result.stderr


def test_development_settings_on_a_public_address_are_warned_about():
    assert "courseplatform.W001" in check_warnings(HOST="0.0.0.0")
    assert "courseplatform.W001" in check_warnings(ALLOWED_HOSTS="academy.example.org")
    assert "courseplatform.W001" not in check_warnings()


def test_redis_refuses_a_client_without_the_password(redis_server):
    url = redis.connection.parse_url(redis_server)
    bare = redis.Redis(host=url["host"], port=url["port"], socket_timeout=2)
    with pytest.raises(redis.AuthenticationError):
        bare.ping()


def test_the_cache_never_unpickles_what_it_reads(redis_server, db):
    """A pickle planted in the cache's key (by anyone who can write to Redis) is read as data or refused, never run."""
    cache.set("probe", {"chapter": "6.1", "n": 3})
    assert cache.get("probe") == {"chapter": "6.1", "n": 3}
    raw = redis.Redis.from_url(redis_server)
    key = cache.make_key("planted")

    class Boom:
        def __reduce__(self):
            return (exec, ("import pathlib; pathlib.Path('/tmp/ba-pwned').touch()",))

    raw.set(key, pickle.dumps(Boom()))
    with pytest.raises(ValueError):
        cache.get("planted")
    import os

    assert not os.path.exists("/tmp/ba-pwned")
    assert settings.CACHES["default"]["OPTIONS"]["serializer"].endswith("JsonSerializer")
