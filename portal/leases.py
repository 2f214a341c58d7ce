"""Leases renewed while their worker lives: a dead worker's rows are reclaimed within a minute.

A worker claims a row by moving its ``next_attempt_at`` a lease ahead (the sweepers reclaim rows
whose lease ran out). ``renewed_lease`` keeps that lease alive from a background thread while the
worker's call runs, so the lease can be short (a dead worker's row waits a lease, not the longest
call) and a call may still take as long as its client's timeouts allow. The renewal is a
compare-and-set on the lease end it last wrote: once anything else writes the row (the worker
records its answer, a sweeper reclaims it) the renewal stops by itself, and it stops at
``max_seconds`` (the longest the covered call may take) for a worker that hangs.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections
from django.db.models import Model, QuerySet
from django.utils import timezone

logger = logging.getLogger(__name__)


def renewal_interval(lease_seconds: float) -> float:
    """Renew three times per lease: two renewals may fail before another worker may claim."""
    return max(lease_seconds / 3, 0.1)


@contextmanager
def renewed_lease(
    rows: QuerySet[Model],
    *,
    lease_end: datetime.datetime,
    lease_seconds: float,
    max_seconds: float,
    field: str = "next_attempt_at",
) -> Iterator[None]:
    """Keep ``field`` of ``rows`` (the claimed row, by its claim's token) a lease ahead while the
    block runs, starting from the ``lease_end`` the claim wrote; stopped (and joined) on exit."""
    stop = threading.Event()
    thread = threading.Thread(
        target=_renew,
        args=(rows, field, lease_end, lease_seconds, time.monotonic() + max_seconds, stop),
        name="lease-renewal",
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _renew(
    rows: QuerySet[Model],
    field: str,
    lease_end: datetime.datetime,
    lease_seconds: float,
    give_up_at: float,
    stop: threading.Event,
) -> None:
    current = lease_end
    try:
        while not stop.wait(renewal_interval(lease_seconds)) and time.monotonic() < give_up_at:
            renewed = timezone.now() + datetime.timedelta(seconds=lease_seconds)
            try:
                if not rows.filter(**{field: current}).update(**{field: renewed}):
                    return  # the row moved on (answer recorded, or reclaimed): nothing to hold
            except Exception:  # a database hiccup: the next renewal tries again
                logger.warning("lease renewal of %s failed", rows.model.__name__, exc_info=True)
                continue
            current = renewed
    finally:
        connections.close_all()  # this thread's connections only
