"""Production mode (DEBUG=false) refuses to start without its secrets, and passes --deploy."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

ENV_EXAMPLE = settings.BASE_DIR / ".env.example"
PRODUCTION_SECRETS = {
    "SECRET_KEY": "h8Vq3Lr0-kP2zW7nXc5Tb1Jm9Yd4Ua6Ge0Sf3Qi8Ro2Ek7Hl5Nt1Cv9Bw4Mx6Zy3",
    "ALLOWED_HOSTS": "portal.example.com",
    "PORTAL_PUBLIC_URL": "https://portal.example.com",
    "DATABASE_URL": "postgres://portal:secret@db.example.com:5432/portal",
    "CELERY_BROKER_URL": "redis://redis.example.com:6379/0",
    "EMAIL_URL": "smtp+tls://portal:secret@smtp.example.com:587",
    "ANYFAST_API_KEY": "sk-production-key",
    "AUDIT_CHAIN_KEY": "2026a:Qm4Zt8Lw1Kx6Vb3Nr9Hc2Jd7Fs5Gy0Pe8Ua4Ti",
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


def _run_settings(
    tmp_path: Path, *names: str, **variables: str
) -> subprocess.CompletedProcess[str]:
    """Runs the settings with exactly ``variables`` set; prints ``names``' values as JSON.

    The settings run from a copy in ``tmp_path``, beside no ``.env``, so a developer's .env
    cannot fill in what a test leaves unset (DEBUG above all).
    """
    copy = tmp_path / "project" / "portal" / "settings.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(settings.BASE_DIR / "portal" / "settings.py", copy)
    script = (
        "import json, runpy, sys; values = runpy.run_path(sys.argv[1]); "
        "print(json.dumps({name: values[name] for name in sys.argv[2:]}, default=str))"
    )
    environment = {"PATH": os.environ["PATH"], "PORTAL_VAR_DIR": str(tmp_path), **variables}
    return subprocess.run(  # noqa: S603 - our own interpreter and settings
        [sys.executable, "-c", script, str(copy), *names],
        cwd=settings.BASE_DIR,  # the project's modules stay importable
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _start_in_production(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """The settings as ``_manage`` starts them (DEBUG=false, every production secret blank unless
    given), run alone: they refuse before Django's commands load, so a refusal needs no more."""
    blank = dict.fromkeys(PRODUCTION_SECRETS, "")
    return _run_settings(tmp_path, **{"DEBUG": "false", **blank, **variables})


def _settings_with(tmp_path: Path, *names: str, **variables: str) -> dict[str, object]:
    """The values of ``names`` when the settings run with exactly ``variables`` set."""
    result = _run_settings(tmp_path, *names, **variables)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_production_refuses_to_start_without_secrets_and_names_them(tmp_path: Path):
    result = _start_in_production(tmp_path)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    for name in PRODUCTION_SECRETS:
        assert name in result.stderr


def test_production_refuses_a_short_secret_key(tmp_path: Path):
    result = _start_in_production(tmp_path, **{**PRODUCTION_SECRETS, "SECRET_KEY": "short"})

    assert result.returncode != 0
    assert "SECRET_KEY must be a random string" in result.stderr


@pytest.mark.parametrize(
    ("key", "refusal"),
    [
        ("dev:development-only-audit-chain-key-never-use-in-production", "development key"),
        ("2026a:short", "at least 32"),
        ("no key id given, only a long secret of many characters", "<key id>:<secret>"),
    ],
)
def test_production_refuses_a_weak_audit_chain_key(tmp_path: Path, key: str, refusal: str):
    result = _start_in_production(tmp_path, **{**PRODUCTION_SECRETS, "AUDIT_CHAIN_KEY": key})

    assert result.returncode != 0
    assert "AUDIT_CHAIN_KEY" in result.stderr and refusal in result.stderr


def test_audit_chain_keys_rotate_the_current_one_writes_the_retired_ones_verify(tmp_path: Path):
    values = _settings_with(
        tmp_path,
        "AUDIT_CHAIN_KEY_ID",
        "AUDIT_CHAIN_KEYS",
        DEBUG="true",
        AUDIT_CHAIN_KEY="k3:" + "c" * 40,
        AUDIT_CHAIN_RETIRED_KEYS="k1:" + "a" * 40 + ", k2:" + "b" * 40,
    )
    assert values["AUDIT_CHAIN_KEY_ID"] == "k3"
    assert sorted(dict(values["AUDIT_CHAIN_KEYS"])) == ["k1", "k2", "k3"]  # type: ignore[call-overload]


def test_debug_is_off_unless_asked_for(tmp_path: Path):
    values = _settings_with(tmp_path, "DEBUG", "SANDBOX_ENABLED", **PRODUCTION_SECRETS)

    assert values == {"DEBUG": False, "SANDBOX_ENABLED": False}


def test_without_any_environment_the_portal_refuses_to_start_in_production(tmp_path: Path):
    result = _run_settings(tmp_path, "DEBUG")

    assert result.returncode != 0
    assert "DEBUG=false needs these environment variables: SECRET_KEY" in result.stderr


@pytest.mark.parametrize("api_key", ["sk-production-key", ""])
def test_production_refuses_the_sandbox_and_names_the_setting(tmp_path: Path, api_key: str):
    # Before, with no key, the sandbox also filled in its development key.
    secrets = {**PRODUCTION_SECRETS, "ANYFAST_API_KEY": api_key}
    result = _start_in_production(tmp_path, **secrets, SANDBOX_ENABLED="true")

    assert result.returncode != 0
    assert "ImproperlyConfigured: SANDBOX_ENABLED=true is refused with DEBUG=false" in result.stderr


def test_only_the_sandbox_gets_a_default_api_key(tmp_path: Path):
    without_sandbox = _settings_with(
        tmp_path / "off", "ANYFAST_API_KEY", DEBUG="true", SANDBOX_ENABLED="false"
    )
    with_sandbox = _settings_with(tmp_path / "on", "ANYFAST_API_KEY", DEBUG="true")

    assert without_sandbox == {"ANYFAST_API_KEY": ""}
    assert with_sandbox == {"ANYFAST_API_KEY": "sk-sandbox-development-key"}


@pytest.mark.parametrize("blank", [" ", "\t  "])
def test_production_counts_a_blank_api_key_as_missing(tmp_path: Path, blank: str):
    result = _start_in_production(tmp_path, **{**PRODUCTION_SECRETS, "ANYFAST_API_KEY": blank})

    assert result.returncode != 0
    assert "DEBUG=false needs these environment variables: ANYFAST_API_KEY" in result.stderr


@pytest.mark.parametrize("hosts", ["*", "portal.example.com, *"])
def test_production_refuses_allowed_hosts_star(tmp_path: Path, hosts: str):
    result = _start_in_production(tmp_path, **{**PRODUCTION_SECRETS, "ALLOWED_HOSTS": hosts})

    assert result.returncode != 0
    assert "ALLOWED_HOSTS='*' is refused with DEBUG=false" in result.stderr


def test_hsts_covers_subdomains_and_asks_for_preload_only_when_opted_in(tmp_path: Path):
    names = ("SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SILENCED_SYSTEM_CHECKS")
    default = _settings_with(tmp_path / "default", *names, **PRODUCTION_SECRETS)
    opted_in = _settings_with(
        tmp_path / "opted-in",
        *names,
        **PRODUCTION_SECRETS,
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )

    assert default == {
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SILENCED_SYSTEM_CHECKS": ["security.W005", "security.W021"],
    }
    assert opted_in == {
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SILENCED_SYSTEM_CHECKS": [],
    }


def test_hsts_preload_without_subdomains_is_refused(tmp_path: Path):
    result = _start_in_production(tmp_path, **PRODUCTION_SECRETS, SECURE_HSTS_PRELOAD="true")

    assert result.returncode != 0
    assert "SECURE_HSTS_PRELOAD=true needs SECURE_HSTS_INCLUDE_SUBDOMAINS=true" in result.stderr


# The deployment checklist: Django's whole check framework in a process of its own, seconds
# each (slow: CI runs them, as bin/test --all does).
@pytest.mark.slow
def test_production_with_hsts_opted_in_passes_the_deployment_checklist(tmp_path: Path):
    result = _manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION_SECRETS,
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)" in result.stdout


@pytest.mark.slow
def test_production_with_all_secrets_passes_the_deployment_checklist(tmp_path: Path):
    result = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_SECRETS)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("PORTAL_PUBLIC_URL", "http://portal.example.com"),
        ("ANYFAST_BASE_URL", "http://www.anyfast.ai"),
        ("ANYFAST_BASE_URL", "ftp://www.anyfast.ai"),
    ],
)
def test_production_refuses_an_address_without_https_and_names_it(
    tmp_path: Path, name: str, url: str
):
    result = _run_settings(tmp_path, "DEBUG", **{**PRODUCTION_SECRETS, name: url})

    assert result.returncode != 0
    assert f"ImproperlyConfigured: {name} must be an https:// address" in result.stderr


def test_development_accepts_plain_http_addresses(tmp_path: Path):
    values = _settings_with(
        tmp_path,
        "PORTAL_PUBLIC_URL",
        "ANYFAST_BASE_URL",
        DEBUG="true",
        PORTAL_PUBLIC_URL="http://127.0.0.1:8123",
    )

    assert values == {
        "PORTAL_PUBLIC_URL": "http://127.0.0.1:8123",
        "ANYFAST_BASE_URL": "http://127.0.0.1:8123/sandbox",
    }


def test_only_development_exempts_the_demo_users_from_the_second_sign_in_step(tmp_path: Path):
    refused = _run_settings(
        tmp_path / "set", "DEBUG", **PRODUCTION_SECRETS, TWO_FACTOR_EXEMPT_USERS="legal"
    )
    production = _settings_with(tmp_path / "prod", "TWO_FACTOR_EXEMPT_USERS", **PRODUCTION_SECRETS)
    development = _settings_with(tmp_path / "dev", "TWO_FACTOR_EXEMPT_USERS", DEBUG="true")

    assert refused.returncode != 0
    assert "TWO_FACTOR_EXEMPT_USERS is refused with DEBUG=false" in refused.stderr
    assert production == {"TWO_FACTOR_EXEMPT_USERS": []}
    assert development == {"TWO_FACTOR_EXEMPT_USERS": ["admin", "onboarding", "legal", "producer"]}


def test_env_example_documents_every_variable_the_settings_read():
    source = (settings.BASE_DIR / "portal" / "settings.py").read_text()
    read = set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', source))
    documented = set(re.findall(r"^# ([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))

    assert len(read) > 40
    assert read - documented == set()


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL planner setting")
def test_the_portals_postgresql_sessions_plan_for_ssd_storage():
    with connection.cursor() as cursor:
        cursor.execute("SHOW random_page_cost")
        assert cursor.fetchone() == ("1.1",)


def test_an_operators_database_options_are_kept(tmp_path: Path):
    url = "postgres://portal@db.internal:5432/portal"
    tuned = _settings_with(tmp_path, "DATABASES", DEBUG="true", DATABASE_URL=url,
                           DATABASE_RANDOM_PAGE_COST="1.5")  # fmt: skip
    own = _settings_with(tmp_path / "own", "DATABASES", DEBUG="true",
                         DATABASE_URL=f"{url}?options=-c%20work_mem%3D64MB")  # fmt: skip
    none = _settings_with(tmp_path / "none", "DATABASES", DEBUG="true", DATABASE_URL=url,
                          DATABASE_RANDOM_PAGE_COST="")  # fmt: skip

    assert tuned["DATABASES"]["default"]["OPTIONS"] == {"options": "-c random_page_cost=1.5"}  # type: ignore[index]
    assert not none["DATABASES"]["default"].get("OPTIONS")  # type: ignore[attr-defined]
    assert own["DATABASES"]["default"]["OPTIONS"] == {"options": "-c work_mem=64MB"}  # type: ignore[index]
