"""Per key, per action request budgets, counted as strictly as an upstream may count them.

A budget ``"<count>/<seconds>"`` allows at most ``count`` calls of an action in any ``seconds``
(a sliding window, no burst allowance), counted by the time each call *arrives* on the sandbox's
own clock: when the request reached the sandbox, plus the injected network delay
(``SANDBOX_LATENCY_MS`` and ``SANDBOX_LATENCY_JITTER_MS``). A call that would make ``count + 1``
in any window is answered 429, and a refused call does not count. The budgets are the documented
ones (``upstream.ratelimit.DOCUMENTED_BUDGETS``), overridden per action by
``settings.SANDBOX_RATE_LIMITS``, never by the portal's own ``ANYFAST_RATE_LIMITS``.

This is deliberately the strictest reading of the documentation: a client that sends a window's
budget in one burst is refused as soon as network delay moves a call of one burst into the window
of the next, while a client that spaces its calls by ``(seconds + margin) / count`` passes as long
as the delays of its calls differ by less than the margin.

Each key's recent arrivals of an action are one row (``RateLimitWindow``), replaced by a
compare-and-set on its version, so the count holds across the threads of the live server and
gunicorn's processes alike. Calls are not handled in the order they arrive (the injected delays
differ), so a late-handled call is checked against every window it falls in, not only the one
it ends.
"""

from __future__ import annotations

import bisect
import threading
import time

from django.conf import settings

from sandbox.models import RateLimitWindow
from upstream.ratelimit import DOCUMENTED_BUDGETS, Budget

# Django's test live server shares one SQLite connection among its request threads, and a shared
# connection can report another statement's row count. Serialising the limiter's statements
# within the process costs nothing measurable and keeps it exact there too.
_lock = threading.Lock()


def budget_for(action: str) -> Budget | None:
    """The budget the sandbox enforces for ``action``; None for actions without one."""
    text = settings.SANDBOX_RATE_LIMITS.get(action)
    return Budget.parse(text) if text else DOCUMENTED_BUDGETS.get(action)


def fits(arrivals: list[float], at: float, budget: Budget) -> bool:
    """Whether a call arriving at ``at`` keeps every window of ``budget.seconds`` holding
    ``arrivals`` (sorted) within ``budget.count`` calls."""
    merged = sorted([*arrivals, at])
    for end in merged[bisect.bisect_left(merged, at) :]:
        if end >= at + budget.seconds:
            break
        inside = bisect.bisect_right(merged, end) - bisect.bisect_right(
            merged, end - budget.seconds
        )
        if inside > budget.count:
            return False
    return True


def try_acquire(*, owner_fingerprint: str, action: str, now: float | None = None) -> bool:
    """Count one call of ``action`` arriving at ``now`` (default: the current time); False (and
    not counted) when it is one too many.

    Always True when ``SANDBOX_ENFORCE_RATE_LIMITS`` is off or the action has no budget.
    """
    if not settings.SANDBOX_ENFORCE_RATE_LIMITS:
        return True
    budget = budget_for(action)
    if budget is None:
        return True
    at = time.time() if now is None else now
    rows = RateLimitWindow.objects.filter(owner_fingerprint=owner_fingerprint, action=action)
    with _lock:
        while True:
            found = rows.values_list("arrivals", "version").first()
            if found is None:
                # The key's first call of this action (a racing process may create it too).
                RateLimitWindow.objects.bulk_create(
                    [RateLimitWindow(owner_fingerprint=owner_fingerprint, action=action)],
                    ignore_conflicts=True,
                )
                continue
            arrivals, version = found
            # Calls more than a window ahead can only come from a clock that has since gone back
            # (a test's time travel); counting them would refuse every call until it caught up.
            # Calls two windows old can no longer share a window with any call still to come.
            recent = [t for t in arrivals if at - 2 * budget.seconds < t <= at + budget.seconds]
            if not fits(recent, at, budget):
                return False
            bisect.insort(recent, at)
            if rows.filter(version=version).update(arrivals=recent, version=version + 1):
                return True
