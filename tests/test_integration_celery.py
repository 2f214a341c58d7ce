"""A real Celery worker, against Redis and the test's PostgreSQL database, runs a real task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction
from django_celery_results.models import TaskResult

from portal.celery import app
from portal.tasks import last_heartbeat, record_heartbeat
from tests.conftest import CELERY_KEY_PREFIX, redis_or_unavailable, unavailable

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# One process, and none of the cluster chatter a lone test worker has no use for.
WORKER_OPTIONS = ["--pool", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat"]
# The portal's worker with this run's broker key prefix (conftest gives the test process the
# same): a worker of another checkout testing against the same Redis never takes our tasks, and
# ours never takes theirs.
_WORKER = textwrap.dedent(
    """
    import sys
    from portal.celery import app

    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options, "global_keyprefix": sys.argv[1]
    }
    app.worker_main(["worker", *sys.argv[2:]])
    """
)


def _database_url() -> str:
    """The URL of the database this test runs in (pytest-django's ``test_portal``)."""
    db = connection.settings_dict
    password = f":{quote(db['PASSWORD'], safe='')}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{quote(db['USER'])}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    if connection.vendor != "postgresql":
        unavailable(
            "the Celery integration test shares its database with a worker process: run it on "
            "PostgreSQL (DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal, as bin/test does)"
        )
    broker_url = settings.CELERY_BROKER_URL
    if not broker_url.startswith("redis://"):
        unavailable(
            "the Celery integration test needs a Redis broker: CELERY_BROKER_URL=redis://... "
            "(bin/test sets it)"
        )
    redis_or_unavailable(broker_url)
    assert app.conf.broker_transport_options["global_keyprefix"] == CELERY_KEY_PREFIX
    log_path = tmp_path / "worker.log"
    environment = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": broker_url,
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter running Celery
            [sys.executable, "-c", _WORKER, CELERY_KEY_PREFIX, *WORKER_OPTIONS, "-l", "INFO"],
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.log_path = log_path  # type: ignore[attr-defined]
    yield process
    process.terminate()
    process.wait(timeout=30)


def test_worker_runs_a_task_enqueued_on_commit(worker):
    with transaction.atomic(), app.connection_for_write() as broker:
        record_heartbeat.delay_on_commit()
        # Nothing may reach the queue before the transaction commits.
        assert broker.default_channel.client.llen("celery") == 0

    deadline = time.monotonic() + 60
    while last_heartbeat() is None:
        if worker.poll() is not None or time.monotonic() > deadline:
            pytest.fail("the worker did not run the task:\n" + worker.log_path.read_text())
        time.sleep(0.2)

    result = TaskResult.objects.get(task_name="portal.tasks.record_heartbeat")
    assert result.status == "SUCCESS"
    assert json.loads(result.result)["worker"].startswith("celery@")
