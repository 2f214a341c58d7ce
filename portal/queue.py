"""The one way the portal sends a Celery task: by name, with row ids, after commit.

A service calls ``enqueue_after_commit("assets.tasks.submit_asset", asset.pk)`` inside its
transaction. The message leaves only once the transaction has committed (a task never looks for a
row that is not there yet), by task name (services never import their tasks, so tasks may import
services). Sending never fails the committed request: when the broker is down the failure is
logged and the row, whose status says it still waits, is found again by its app's sweeper. Once a
send has failed, the next ``BROKER_DOWN_SECONDS`` go straight to the sweepers (a page or a command
pays the broker's timeout once, not per task). ``sends_recorded`` tells a caller (import_assets)
which of its tasks left and which wait for a sweeper.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from django.db import transaction

from portal.celery import app

logger = logging.getLogger(__name__)

# After a failed send, sends within this many seconds are left to the sweepers without trying.
BROKER_DOWN_SECONDS = 5.0
_broker_down_until = 0.0
_recorders = threading.local()


@dataclass(frozen=True)
class Send:
    """One task send: ``sent`` False when it was left to its sweeper (the broker was away)."""

    task_name: str
    row_ids: tuple[int, ...]
    sent: bool


def enqueue_after_commit(task_name: str, *row_ids: int, countdown: float | None = None) -> None:
    """Send ``task_name(*row_ids)`` once the current transaction commits (at once outside one).

    ``countdown`` delays the task by that many seconds. Never raises for the broker.
    """
    transaction.on_commit(partial(send_task, task_name, row_ids, countdown))


@contextmanager
def sends_recorded() -> Iterator[list[Send]]:
    """Collect the sends made (after commit) in this thread while the block runs."""
    sends: list[Send] = []
    stack = _recorders.__dict__.setdefault("stack", [])
    stack.append(sends)
    try:
        yield sends
    finally:
        stack.remove(sends)


def send_task(task_name: str, row_ids: tuple[int, ...], countdown: float | None) -> bool:
    """Send one task message now; False (logged) when the broker could not take it."""
    global _broker_down_until
    sent = False
    if time.monotonic() < _broker_down_until:
        logger.warning(
            "not queueing %s%s: the broker failed moments ago; its sweeper will send it",
            task_name,
            list(row_ids),
        )
    else:
        try:
            app.send_task(task_name, args=list(row_ids), countdown=countdown)
            sent = True
        except Exception as exc:  # the broker's failures are many (connection, timeout, auth)
            _broker_down_until = time.monotonic() + BROKER_DOWN_SECONDS
            logger.warning(
                "could not queue %s%s (%s: %s): its sweeper will send it again",
                task_name,
                list(row_ids),
                type(exc).__name__,
                exc,
            )
    for sends in getattr(_recorders, "stack", []):
        sends.append(Send(task_name, row_ids, sent))
    return sent
