"""Production mode (DEBUG=false) refuses to start without its secrets, and passes --deploy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ENV_EXAMPLE = settings.BASE_DIR / ".env.example"
PRODUCTION_SECRETS = {
    "SECRET_KEY": "h8Vq3Lr0-kP2zW7nXc5Tb1Jm9Yd4Ua6Ge0Sf3Qi8Ro2Ek7Hl5Nt1Cv9Bw4Mx6Zy3",
    "ALLOWED_HOSTS": "portal.example.com",
    "PORTAL_PUBLIC_URL": "https://portal.example.com",
    "DATABASE_URL": "postgres://portal:secret@db.example.com:5432/portal",
    "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
    "EMAIL_URL": "smtp+tls://portal:secret@smtp.example.com:587",
    "ANYFAST_API_KEY": "sk-production-key",
}


def _manage(tmp_path: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """``manage.py`` in production mode with only the given variables (nothing from .env)."""
    # An empty value counts as missing, and keeps a developer's .env from filling it in.
    blank = dict.fromkeys(PRODUCTION_SECRETS, "")
    environment = {
        "PATH": os.environ["PATH"],
        "DEBUG": "false",
        "PORTAL_VAR_DIR": str(tmp_path),
        **blank,
        **variables,
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_production_refuses_to_start_without_secrets_and_names_them(tmp_path: Path):
    result = _manage(tmp_path, "check")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    for name in PRODUCTION_SECRETS:
        assert name in result.stderr


def test_production_refuses_a_short_secret_key(tmp_path: Path):
    result = _manage(tmp_path, "check", **{**PRODUCTION_SECRETS, "SECRET_KEY": "short"})

    assert result.returncode != 0
    assert "SECRET_KEY must be a random string" in result.stderr


def test_production_with_all_secrets_passes_the_deployment_checklist(tmp_path: Path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_SECRETS)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def test_env_example_documents_every_variable_the_settings_read():
    source = (settings.BASE_DIR / "portal" / "settings.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source))
    documented = set(re.findall(r"^# ([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))

    assert len(read) > 40
    assert read - documented == set()
