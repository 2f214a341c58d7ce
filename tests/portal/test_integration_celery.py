"""A real Celery worker, against Redis and the test's PostgreSQL database, runs a real task."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import transaction
from django_celery_results.models import TaskResult

from portal.celery import app
from portal.tasks import last_heartbeat, record_heartbeat
from tests.celery_helpers import celery_worker, purge_queue, require_worker_services

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    require_worker_services()
    purge_queue()  # messages left behind by earlier runs
    with celery_worker(tmp_path) as process:
        yield process


def test_worker_runs_a_task_enqueued_on_commit(worker):
    with transaction.atomic(), app.connection_for_write() as broker:
        record_heartbeat.delay_on_commit()
        # Nothing may reach the queue before the transaction commits.
        assert broker.default_channel.client.llen("sweeps") == 0

    deadline = time.monotonic() + 60
    while last_heartbeat() is None:
        if worker.poll() is not None or time.monotonic() > deadline:
            pytest.fail("the worker did not run the task:\n" + worker.log_path.read_text())
        time.sleep(0.2)

    result = TaskResult.objects.get(task_name="portal.tasks.record_heartbeat")
    assert result.status == "SUCCESS"
    assert json.loads(result.result)["worker"].startswith("celery@")
