"""Fixtures shared by the whole suite."""

from __future__ import annotations

import itertools
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connections
from django.test import Client
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import Browser, sync_playwright

from portal import queue as portal_queue
from portal.celery import app as celery_app
from sandbox import counters
from tests import database
from tests.factories import UserFactory
from tests.upstream_helpers import SANDBOX_KEY

# The Redis the tests write to. Several checkouts may test against the same database at once, so
# everything a run writes there carries its own key prefix and is deleted afterwards: a test
# never flushes a database it shares.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RUN_PREFIX = f"test:{uuid.uuid4().hex[:12]}:"
# Everything the portal's Celery app puts on a Redis broker during this run (queues, bindings,
# unacknowledged messages); a test's worker process gets the same transport option.
CELERY_KEY_PREFIX = f"{RUN_PREFIX}celery:"

# The property tests' example count: Hypothesis' own 100, which CI and a plain pytest keep;
# bin/test's quick run asks for "dev". Loaded before the test modules make their settings.
hypothesis_settings.register_profile("dev", max_examples=20)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    # Django's default PBKDF2 takes a good part of a second per password on this machine, and
    # the factories set one for every user; the tests never need a hash that resists guessing.
    django_settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    database.commit_without_waiting_for_the_disk()
    database.flush_by_delete()
    django_settings.ANYFAST_RATE_LIMIT_REDIS_PREFIX = f"{RUN_PREFIX}ratelimit:"
    # Before anything opens a broker connection, which would keep the options it was made with;
    # the environment variable reaches the worker processes the integration tests start.
    os.environ["CELERY_BROKER_KEY_PREFIX"] = CELERY_KEY_PREFIX
    celery_app.conf.broker_transport_options = {
        **celery_app.conf.broker_transport_options,
        "global_keyprefix": CELERY_KEY_PREFIX,
    }


def pytest_unconfigure(config: pytest.Config) -> None:
    """Delete whatever this run left in Redis under its prefix, and nothing else."""
    urls = {
        TEST_REDIS_URL,
        django_settings.CELERY_BROKER_URL,
        django_settings.ANYFAST_RATE_LIMIT_REDIS_URL,
    }
    for url in urls:
        if url.startswith("redis"):
            delete_prefixed(url, RUN_PREFIX)


def delete_prefixed(url: str, prefix: str) -> None:
    """Delete the keys under ``prefix`` (one of this run's) at ``url``, if that Redis answers."""
    if not prefix.startswith(RUN_PREFIX) or any(char in prefix for char in "*?[]\\"):
        raise ValueError(f"not one of this run's key prefixes: {prefix!r}")
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
    except redis.RedisError:
        pass  # nothing was written where nothing answers


_test_folders = itertools.count()


@pytest.fixture(autouse=True)
def private_files(settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test writes private files to its own temporary folder, never to var/.

    The folder is made by the first file written there: most tests write none, and a folder
    made and deleted for each of them (as ``tmp_path`` does) costs seconds a run.
    """
    folder = tmp_path_factory.getbasetemp() / "files" / str(next(_test_folders))
    root = folder / "private"
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
    # The audit chain's anchors too: verify_audit reads every anchor in that file.
    settings.AUDIT_ANCHOR_PATH = folder / "audit-anchors.jsonl"
    return root


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose service is missing here; on CI (CI=true) fail it instead.

    Integration and browser tests must never be skipped silently where they are meant to run.
    """
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: integration and browser tests must run)")
    pytest.skip(reason)


def redis_or_unavailable(url: str) -> redis.Redis:
    """A client of the Redis at ``url``, or ``unavailable`` when nothing answers there."""
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis is not reachable at {url} ({exc})")
    return client


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own in ``TEST_REDIS_URL``; its keys are deleted afterwards."""
    prefix = f"{RUN_PREFIX}{uuid.uuid4().hex[:8]}:"
    yield prefix
    delete_prefixed(TEST_REDIS_URL, prefix)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def upstream(settings, live_server, tmp_path):
    """The sandbox as the upstream, quiet (no faults, no latency), with a private limiter file.

    Served over real HTTP by the live server, which also serves the portal's signed file links
    the sandbox downloads from (``PORTAL_PUBLIC_URL``).
    """
    settings.ANYFAST_BASE_URL = live_server.url + "/sandbox"
    settings.PORTAL_PUBLIC_URL = live_server.url
    settings.ANYFAST_API_KEY = SANDBOX_KEY
    settings.ANYFAST_RATE_LIMIT_ENABLED = True
    settings.ANYFAST_RATE_LIMIT_REDIS_URL = ""
    settings.ANYFAST_RATE_LIMIT_FILE = tmp_path / "rate-limit.sqlite3"
    settings.SANDBOX_ENFORCE_RATE_LIMITS = False
    settings.SANDBOX_LATENCY_MS = 0
    for fault in ("500", "502", "429", "TIMEOUT", "DROP", "500_AFTER", "DROP_AFTER"):
        setattr(settings, f"SANDBOX_FAULT_RATE_{fault}", 0.0)
    settings.SANDBOX_FAULT_ACTIONS = []
    settings.SANDBOX_GETASSET_HIDES_LIVENESS = False
    counters.reset()
    return live_server


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


CHROMIUM = Path("/usr/bin/chromium")
# Without the networking flags Chromium tries to reach the internet, which this machine refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def browser(monkeypatch) -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (never a browser Playwright downloads)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing: apt-get install -y chromium (bin/test does)")
    # Playwright's sync API runs an event loop in this thread, beside the Django ORM.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
        # The ORM calls made while Playwright's loop ran opened their own connections.
        connections.close_all()


@dataclass
class Queue:
    """Tasks enqueued on commit, as ``(task name, args)``, instead of reaching a broker."""

    calls: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)

    def of(self, task: Any) -> list[tuple[Any, ...]]:
        return [args for name, args in self.calls if name == task.name]

    def ids_of(self, task_name: str) -> _LiveIds:
        """The first row id of each call of ``task_name``, read when used (calls come later)."""
        return _LiveIds(self, task_name)


class _LiveIds(list):  # type: ignore[type-arg]
    def __init__(self, queue: Queue, task_name: str) -> None:
        super().__init__()
        self._queue, self._task_name = queue, task_name

    def _ids(self) -> list[int]:
        return [args[0] for name, args in self._queue.calls if name == self._task_name]

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids())

    def __len__(self) -> int:
        return len(self._ids())

    def __getitem__(self, index: Any) -> Any:
        return self._ids()[index]

    def __eq__(self, other: object) -> bool:
        return self._ids() == other

    __hash__ = None  # type: ignore[assignment]


@pytest.fixture
def queued(monkeypatch) -> Iterator[Queue]:
    """Records the tasks services send (``portal.queue``), still only after commit, instead of
    reaching a broker."""
    queue = Queue()

    def send_task(name: str, row_ids: tuple[Any, ...], countdown: float | None) -> bool:
        queue.calls.append((name, row_ids))
        return True

    monkeypatch.setattr(portal_queue, "send_task", send_task)
    yield queue
