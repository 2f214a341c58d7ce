"""Real Celery worker processes for the integration tests, on Redis and the test's database."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.db import connection

from portal.celery import app
from tests.conftest import port_open, unavailable

# One process, and none of the cluster chatter a lone test worker has no use for.
WORKER_OPTIONS = ["--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]


def database_url() -> str:
    """The URL of the database this test runs in (pytest-django's ``test_portal``)."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{quote(db['USER'])}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


def require_worker_services() -> None:
    """PostgreSQL (shared with the worker) and Redis as the broker, or ``unavailable``."""
    if connection.vendor != "postgresql":
        unavailable(
            "the Celery integration tests share their database with a worker process: run them "
            "on PostgreSQL (DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal, as bin/test "
            "does)"
        )
    broker = urlsplit(settings.CELERY_BROKER_URL)
    if broker.scheme != "redis":
        unavailable("the Celery integration tests need CELERY_BROKER_URL=redis://... (bin/test)")
    if not port_open(broker.hostname or "127.0.0.1", broker.port or 6379):
        unavailable(f"Redis is not running at {settings.CELERY_BROKER_URL}")


@contextmanager
def celery_worker(
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    beat: bool = False,
    name: str = "celery",
) -> Iterator[subprocess.Popen[bytes]]:
    """A worker process (``-B``: with beat inside) on this test's database and broker.

    Its output goes to ``process.log_path``. Stopped on exit unless already gone.
    """
    require_worker_services()
    log_path = tmp_path / f"{name}.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "PORTAL_VAR_DIR": str(tmp_path / f"var-{name}"),
        **(env or {}),
    }
    # Beat's schedule lives in the database (django-celery-beat), copied from the settings.
    options = [*WORKER_OPTIONS, "--queues", ",".join(settings.WORKER_QUEUES)]
    if beat:
        options.append("--beat")
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter running Celery
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                *options,
                "--hostname",
                f"{name}@%h",
                "-l",
                "INFO",
            ],
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log_path  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def purge_queue() -> None:
    """Drop task messages left in the broker by earlier tests, from every queue."""
    with app.connection_for_write() as broker:
        for queue in settings.WORKER_QUEUES:
            broker.default_channel.queue_purge(queue)


class PrivateRedis:
    """A Redis server of the test's own on a free port (never the shared one): ``start`` and
    ``stop`` it to play a broker outage."""

    def __init__(self, folder: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            unavailable("redis-server is not installed: no private broker to stop")
        self.server = server
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - a Redis server of the test's own
            [
                self.server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not port_open("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


@contextmanager
def broker_at(url: str) -> Iterator[None]:
    """This process sends its tasks to the broker at ``url`` while the block runs."""
    previous = app.conf.broker_write_url

    def use(broker: str | None) -> None:
        # The write URL: broker_url itself prefers the CELERY_BROKER_URL environment variable.
        app.conf.broker_write_url = broker
        app._pool = None  # connection and producer pools are made, per broker, on next use
        app.amqp._producer_pool = None

    use(url)
    try:
        yield
    finally:
        use(previous)
