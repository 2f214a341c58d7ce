"""Per key, per action request budgets (``settings.SANDBOX_RATE_LIMITS``), kept in the database.

A budget ``"<count>/<seconds>"`` is a token bucket of ``count`` calls refilled at
``count/seconds``, run as the generic cell rate algorithm: one row per key and action holds the
bucket's theoretical arrival time (TAT), and a call conforms while the TAT is at most one burst
(``seconds - seconds/count``) ahead of now. So a key can make ``count`` calls at once, and no
more than ``count/seconds`` on average; call ``count + 1`` of a burst answers 429.

Why this and not fixed windows: a client that keeps every sliding window of ``seconds`` within
``count`` (the portal's limiter does) always conforms to this bucket, even with its calls
arriving up to ``JITTER_SECONDS`` late, whereas fixed windows refuse such a client whenever
network jitter moves one call across a window boundary.

The check and the update are one conditional ``UPDATE``, which the database serialises, so the
budget holds across the threads of the live server and gunicorn's processes alike.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F, FloatField, Value
from django.db.models.functions import Greatest

from sandbox.models import RateLimitBucket

# How late a call may arrive (network, scheduling) and still be judged at its sending time;
# capped at half the spacing between calls so that a burst still stops at ``count``.
JITTER_SECONDS = 0.05

# Django's test live server shares one SQLite connection among its request threads, and a shared
# connection can report another statement's row count. Serialising the limiter's statements
# within the process costs nothing measurable and keeps it exact there too.
_lock = threading.Lock()


@dataclass(frozen=True)
class Budget:
    count: int
    seconds: float


def parse_budget(text: str) -> Budget:
    """``"300/60"`` → ``Budget(count=300, seconds=60.0)``; ``ValueError`` unless both are > 0."""
    count, _, seconds = text.partition("/")
    budget = Budget(count=int(count), seconds=float(seconds or 1))
    if budget.count <= 0 or budget.seconds <= 0:
        raise ValueError(f"A rate budget needs a positive count and period, not {text!r}")
    return budget


def budget_for(action: str) -> Budget | None:
    """The budget the sandbox enforces for ``action``; None for actions without one."""
    text = settings.SANDBOX_RATE_LIMITS.get(action)
    return parse_budget(text) if text else None


def try_acquire(*, owner_fingerprint: str, action: str, now: float | None = None) -> bool:
    """Spend one call of ``action`` from the key's bucket; False when the call does not conform.

    Always True when ``SANDBOX_ENFORCE_RATE_LIMITS`` is off or the action has no budget.
    """
    if not settings.SANDBOX_ENFORCE_RATE_LIMITS:
        return True
    budget = budget_for(action)
    if budget is None:
        return True
    now = time.time() if now is None else now
    interval = budget.seconds / budget.count
    latest = now + budget.seconds - interval + min(JITTER_SECONDS, interval / 2)
    conforming = RateLimitBucket.objects.filter(
        owner_fingerprint=owner_fingerprint, action=action, tat__lte=latest
    )
    spend = {"tat": Greatest(F("tat"), Value(now, output_field=FloatField())) + interval}
    with _lock:
        if conforming.update(**spend):
            return True
        # Refused, or the key's first call of this action: create a full bucket (a racing
        # process may have done so already) and try once more.
        RateLimitBucket.objects.bulk_create(
            [RateLimitBucket(owner_fingerprint=owner_fingerprint, action=action, tat=now)],
            ignore_conflicts=True,
        )
        return bool(conforming.update(**spend))
