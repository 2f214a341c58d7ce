"""Counting requests per key in a window, shared by every process: the one throttle of the
portal's own pages (django-axes keeps the admin's failed logins).

``throttle_take`` counts one request for a key and says whether it is within the limit. The
count lives in the database (``ThrottleCount``) and is taken in one atomic statement (an
upsert), so every gunicorn worker and thread shares it: a per-process cache would give an
attacker one limit per worker. A key's window starts at its first request and lasts
``window_seconds``; a request after it starts a new one. Each key keeps its own window, so keys of
different limits share the table. Rows whose window has ended are deleted on the way, a few at a
time and never waiting for a row another request holds.

Users: invitation codes typed per client address (``verification.throttle``) and "Send me my
link" per client address and per email address (``consent.person_pages``).
"""

from __future__ import annotations

import datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from portal.models import ThrottleCount

KEY_MAX_LENGTH = ThrottleCount._meta.get_field("key").max_length or 128
# Stale rows deleted per request: enough to keep up with any rate of new keys, never a long wait.
_STALE_BATCH = 100


def throttle_take(
    *, key: str, limit: int, window_seconds: int, now: datetime.datetime | None = None
) -> bool:
    """Count one request under ``key``; ``False`` once more than ``limit`` were counted in its
    window (a refused request is counted too; it does not lengthen the window).

    ``key`` (at most ``KEY_MAX_LENGTH`` characters, longer ones are cut) must hold no secret and
    no raw email address: hash those first.
    """
    now = now or timezone.now()
    key = key[:KEY_MAX_LENGTH]
    quote = connection.ops.quote_name
    table, key_, ends, taken_ = (
        quote(name) for name in (ThrottleCount._meta.db_table, "key", "window_ends_at", "taken")
    )
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({key_}, {ends}, {taken_}) VALUES (%s, %s, 1) "  # noqa: S608
            f"ON CONFLICT ({key_}) DO UPDATE SET "
            f"{taken_} = CASE WHEN {table}.{ends} <= %s THEN 1 ELSE {table}.{taken_} + 1 END, "
            f"{ends} = CASE WHEN {table}.{ends} <= %s THEN EXCLUDED.{ends} ELSE {table}.{ends} END "
            f"RETURNING {taken_}",
            [key, now + datetime.timedelta(seconds=window_seconds), now, now],
        )
        (taken,) = cursor.fetchone()
        # Skip rows another request holds (it is renewing or deleting them): no waiting, and no
        # two requests deleting in different orders can deadlock.
        stale = (
            ThrottleCount.objects.filter(window_ends_at__lte=now)
            .select_for_update(skip_locked=True)
            .values("pk")[:_STALE_BATCH]
        )
        ThrottleCount.objects.filter(pk__in=stale).delete()
    return bool(taken <= limit)


def throttle_refund(*, key: str) -> None:
    """Give back one request counted under ``key`` (it turned out not to count, e.g. a right
    code)."""
    ThrottleCount.objects.filter(key=key[:KEY_MAX_LENGTH], taken__gt=0).update(taken=F("taken") - 1)
