"""Production settings refuse unsafe configurations; the default needs none."""

import os
import subprocess
import sys


def settings_import(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "REDIS_URL", "DATABASE_URL")
    }
    return subprocess.run(
        [sys.executable, "-c", f"import importlib; importlib.import_module('{module}'); print('imported')"],
        env={**clean, **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_refuses_to_start_without_secret_key():
    result = settings_import("courseplatform.settings.production", ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_to_start_with_debug_on():
    result = settings_import("courseplatform.settings.production", DEBUG="true", SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "DEBUG must be off" in result.stderr


def test_production_starts_with_a_secret_key_and_debug_off():
    result = settings_import(
        "courseplatform.settings.production",
        SECRET_KEY="k3y-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMN",
        ALLOWED_HOSTS="example.org",
        REDIS_URL="redis://:s3cret@redis:6379/0",
        DATABASE_URL="postgres://ba:pw@db:5432/ba",
    )
    assert result.returncode == 0, result.stderr
    assert "imported" in result.stdout


def test_embedded_default_needs_no_configuration():
    result = settings_import("courseplatform.settings.development")
    assert result.returncode == 0, result.stderr


def test_debug_off_without_secret_key_is_refused_even_outside_production():
    result = settings_import("courseplatform.settings.development", DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
