"""Tasks that belong to no app."""

from __future__ import annotations

import datetime
from typing import Any

from django_celery_results.models import TaskResult

from portal.celery import app


@app.task(bind=True, name="portal.tasks.record_heartbeat")
def record_heartbeat(self: Any) -> dict[str, str]:
    """Proves that a worker consumes the queue.

    The result that django-celery-results stores is the heartbeat; ``last_heartbeat`` reads it.
    Beat sends it every ``HEARTBEAT_INTERVAL_SECONDS`` (``CELERY_BEAT_SCHEDULE``); ``/healthz``
    reports its age.
    """
    return {"worker": str(self.request.hostname)}


def last_heartbeat() -> datetime.datetime | None:
    """When a worker last ran ``record_heartbeat``, or ``None`` if none ever did."""
    result = (
        TaskResult.objects.filter(task_name=record_heartbeat.name, status="SUCCESS")
        .order_by("-date_done")
        .first()
    )
    return result.date_done if result else None
