"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest


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
