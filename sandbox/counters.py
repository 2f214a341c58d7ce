"""Per-action call counters, shared by every server thread and process through the database.

Tests and benchmarks read them with::

    from sandbox import counters
    counters.reset()
    ...                      # drive the client
    counters.snapshot()      # {"GetAsset": {"calls": 12, "rate_limited": 0, "faults": 1}, ...}

``calls`` counts every request to a known action (including those then refused), ``rate_limited``
the 429s of the rate limiter, ``faults`` the injected faults of any kind (an injected 429 is a
fault, not a rate-limit refusal).
"""

from __future__ import annotations

import threading

from django.db.models import F

from sandbox.models import ActionCounter

FIELDS = ("calls", "rate_limited", "faults")

# Django's test live server shares one SQLite connection among its request threads; a shared
# connection can report another statement's row count, so bumps are serialised per process.
_lock = threading.Lock()


def _bump(action: str, field: str) -> None:
    # One UPDATE in the common case; the row is created the first time an action is seen.
    # ignore_conflicts makes the creation safe when two processes race for it.
    rows = ActionCounter.objects.filter(action=action)
    with _lock:
        if rows.update(**{field: F(field) + 1}):
            return
        ActionCounter.objects.bulk_create([ActionCounter(action=action)], ignore_conflicts=True)
        rows.update(**{field: F(field) + 1})


def record_call(action: str) -> None:
    _bump(action, "calls")


def record_rate_limited(action: str) -> None:
    _bump(action, "rate_limited")


def record_fault(action: str) -> None:
    _bump(action, "faults")


def snapshot() -> dict[str, dict[str, int]]:
    """``{action: {"calls", "rate_limited", "faults"}}`` for every action called since reset."""
    return {
        row["action"]: {field: row[field] for field in FIELDS}
        for row in ActionCounter.objects.values("action", *FIELDS)
    }


def reset() -> None:
    """Forget every count."""
    ActionCounter.objects.all().delete()
