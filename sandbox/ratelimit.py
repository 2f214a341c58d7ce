"""Per key, per action request budgets (``settings.ANYFAST_RATE_LIMITS``), kept in the database.

Each budget ``"<count>/<seconds>"`` is enforced over fixed windows aligned on multiples of
``seconds`` since the epoch: at most ``count`` calls per key and action in each window. Fixed
windows are how a per-second QPS limit is commonly counted, and they accept every request
pattern that a client-side sliding-window limiter with the same budget lets through.

The count lives in one row per key, action and window, incremented by a conditional
``UPDATE ... SET count = count + 1 WHERE count < limit``. The database serialises those updates,
so the budget holds across the threads of the live server and the processes of gunicorn alike;
the common case is that single statement.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F

from sandbox.models import RateLimitWindow


@dataclass(frozen=True)
class Budget:
    count: int
    seconds: float


def parse_budget(text: str) -> Budget:
    """``"300/60"`` → ``Budget(count=300, seconds=60.0)``."""
    count, _, seconds = text.partition("/")
    return Budget(count=int(count), seconds=float(seconds or 1))


def budget_for(action: str) -> Budget | None:
    """The documented budget of ``action``; None for actions without one."""
    text = settings.ANYFAST_RATE_LIMITS.get(action)
    return parse_budget(text) if text else None


def try_acquire(*, owner_fingerprint: str, action: str, now: float | None = None) -> bool:
    """Count one call of ``action`` by the key; False when the key's budget is spent.

    Always True when ``SANDBOX_ENFORCE_RATE_LIMITS`` is off or the action has no budget.
    """
    if not settings.SANDBOX_ENFORCE_RATE_LIMITS:
        return True
    budget = budget_for(action)
    if budget is None:
        return True
    window = int((time.time() if now is None else now) // budget.seconds)
    rows = RateLimitWindow.objects.filter(
        owner_fingerprint=owner_fingerprint, action=action, window=window
    )
    if rows.filter(count__lt=budget.count).update(count=F("count") + 1):
        return True
    # Either the window is full or its row does not exist yet: create it (a racing process may
    # have done so already), forget this key's older windows, and try once more.
    RateLimitWindow.objects.bulk_create(
        [RateLimitWindow(owner_fingerprint=owner_fingerprint, action=action, window=window)],
        ignore_conflicts=True,
    )
    RateLimitWindow.objects.filter(
        owner_fingerprint=owner_fingerprint, action=action, window__lt=window
    ).delete()
    return bool(rows.filter(count__lt=budget.count).update(count=F("count") + 1))
