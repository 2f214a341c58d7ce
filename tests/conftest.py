"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import NoReturn

import pytest
from django.test import Client

from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def private_files(settings, tmp_path: Path) -> Path:
    """Every test writes private files to its own temporary folder, never to var/."""
    root = tmp_path / "private"
    storage = {
        "BACKEND": "portal.storage.PrivateFileSystemStorage",
        "OPTIONS": {"location": root, "base_url": None},
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "default": storage,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.PRIVATE_MEDIA_ROOT = root
    return root


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose service is missing here; on CI (CI=true) fail it instead.

    Integration and browser tests must never be skipped silently where they are meant to run.
    """
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: integration and browser tests must run)")
    pytest.skip(reason)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def superuser(db):
    return UserFactory(username="root", superuser=True)


@pytest.fixture
def superuser_client(client: Client, superuser) -> Client:
    client.force_login(superuser)
    return client


@pytest.fixture
def staff_client(client: Client, db) -> Client:
    """A staff member with no permission at all."""
    client.force_login(UserFactory(username="no-permissions"))
    return client
