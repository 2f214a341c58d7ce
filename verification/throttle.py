"""How many invitation codes an address may type: ``CODE_TRIES`` per ``CODE_WINDOW_SECONDS``.

A code opens a person's invitation, so guessing is limited per client address
(``portal.client_ip``: behind a proxy the proxy's address never counts, so an attacker locked
out locks out nobody else). The count lives in the database (``CodeTries``) and is taken
before the lookup in one atomic statement (an upsert), so every web process and thread shares
it and no lookup runs beyond the limit; a code that was right gives its try back.
"""

from __future__ import annotations

import datetime

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from verification.models import CodeTries

CODE_TRIES = 10
CODE_WINDOW_SECONDS = 600

_TABLE = CodeTries._meta.db_table


def code_try_take(*, address: str, now: datetime.datetime | None = None) -> bool:
    """Count one typed code for ``address``; ``False`` when it is over the limit (no lookup).

    A window starts at an address's first try and lasts ``CODE_WINDOW_SECONDS``; a try after it
    starts a new one. Stale rows of other addresses are deleted on the way.
    """
    now = now or timezone.now()
    window_start = now - datetime.timedelta(seconds=CODE_WINDOW_SECONDS)
    table = connection.ops.quote_name(_TABLE)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (address, window_started_at, tries) VALUES (%s, %s, 1) "  # noqa: S608
            f"ON CONFLICT (address) DO UPDATE SET "
            f"tries = CASE WHEN {table}.window_started_at <= %s THEN 1 "
            f"ELSE {table}.tries + 1 END, "
            f"window_started_at = CASE WHEN {table}.window_started_at <= %s "
            f"THEN EXCLUDED.window_started_at ELSE {table}.window_started_at END "
            f"RETURNING tries",
            [address[:64], now, window_start, window_start],
        )
        (tries,) = cursor.fetchone()
        CodeTries.objects.filter(window_started_at__lte=window_start).exclude(
            address=address[:64]
        ).delete()
    return bool(tries <= CODE_TRIES)


def code_try_refund(*, address: str) -> None:
    """A right code: its try does not count against the address."""
    CodeTries.objects.filter(address=address[:64], tries__gt=0).update(tries=F("tries") - 1)
