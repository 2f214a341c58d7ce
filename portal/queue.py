"""The one way the portal sends a Celery task: by name, with row ids, after commit.

A service calls ``enqueue_after_commit("assets.tasks.submit_asset", asset.pk)`` inside its
transaction. The message leaves only once the transaction has committed (a task never looks for a
row that is not there yet), by task name (services never import their tasks, so tasks may import
services). Sending never fails the committed request: when the broker is down the failure is
logged and the row, whose status says it still waits, is found again by its app's sweeper.
"""

from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

from portal.celery import app

logger = logging.getLogger(__name__)


def enqueue_after_commit(task_name: str, *row_ids: int, countdown: float | None = None) -> None:
    """Send ``task_name(*row_ids)`` once the current transaction commits (at once outside one).

    ``countdown`` delays the task by that many seconds. Never raises for the broker.
    """
    transaction.on_commit(partial(send_task, task_name, row_ids, countdown))


def send_task(task_name: str, row_ids: tuple[int, ...], countdown: float | None) -> bool:
    """Send one task message now; False (logged) when the broker could not take it."""
    try:
        app.send_task(task_name, args=list(row_ids), countdown=countdown)
    except Exception as exc:  # the broker's failures are many (connection, timeout, auth)
        logger.warning(
            "could not queue %s%s (%s: %s): its sweeper will send it again",
            task_name,
            list(row_ids),
            type(exc).__name__,
            exc,
        )
        return False
    return True
