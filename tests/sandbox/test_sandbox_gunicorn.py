"""The sandbox under gunicorn with several worker processes, as in development.

Django's live server shares one in-memory SQLite connection between its threads, which proves
nothing about concurrency; these tests start real gunicorn processes on a file database instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.conf import settings as django_settings

from sandbox.servers import gunicorn

pytestmark = pytest.mark.slow

MANAGE_DIR = Path(django_settings.BASE_DIR)


@pytest.fixture(scope="module")
def environment(tmp_path_factory) -> dict[str, str]:
    """A file database with the sandbox's tables, and the environment gunicorn needs."""
    var_dir = tmp_path_factory.mktemp("gunicorn-var")
    env = {
        **os.environ,
        "DEBUG": "true",
        "SANDBOX_ENABLED": "true",
        "PORTAL_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'portal.sqlite3'}",
        "SANDBOX_ENFORCE_RATE_LIMITS": "true",
        "SANDBOX_RATE_LIMITS": "GetAsset=5/3600",
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "sandbox", "-v0"],
        cwd=MANAGE_DIR,
        env=env,
        check=True,
    )
    return env


def _serve(env: dict[str, str], *, workers: int, threads: int = 1) -> Iterator[str]:
    with gunicorn(env, workers=workers, threads=threads) as base_url:
        yield f"{base_url}/sandbox/volc/asset"


@pytest.fixture(scope="module")
def workers(environment) -> Iterator[str]:
    yield from _serve(environment, workers=3)


@pytest.fixture(scope="module")
def dropping_server(environment) -> Iterator[str]:
    # One process with threads, as the Procfile runs it (gunicorn's gthread worker).
    yield from _serve({**environment, "SANDBOX_FAULT_RATE_DROP": "1.0"}, workers=1, threads=4)


def test_the_budget_holds_across_worker_processes(workers):
    def get_asset(_: int) -> int:
        response = requests.post(
            f"{workers}/GetAsset",
            json={"Id": "asset-x"},
            headers={"Authorization": "Bearer sk-concurrent"},
            timeout=10,
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(get_asset, range(20)))

    assert statuses.count(404) == 5  # within the budget: the action answers (unknown asset)
    assert statuses.count(429) == 15


def test_a_dropped_connection_is_a_connection_error_under_gunicorn(dropping_server):
    with requests.Session() as session:  # the second call reuses nothing: the socket is gone
        for _ in range(2):
            with pytest.raises(requests.ConnectionError):
                session.post(
                    f"{dropping_server}/GetAsset",
                    json={"Id": "asset-x"},
                    headers={"Authorization": "Bearer sk-drop"},
                    timeout=5,
                )
