"""Benchmark 5: ``verify_audit --full`` on a long audit chain.

Writes ``EVENTS`` events of the keyed chain straight into the table (COPY; each hashed as
``audit_record`` would), then times the full check against two reads of the same rows that do
nothing with them: the check's own query on a server-side cursor (the database's pace, the
floor) and the ORM's ``values_list`` (what the target was set against). Each is timed
``RUNS`` times, the median counts. Target: the check takes at most twice as long as the ORM read.
"""

from __future__ import annotations

import datetime
import json
import os
import statistics
import time
from collections.abc import Callable

from benchmarks.results import Result

NAME = "audit chain"
EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "250000"))
RUNS = 3
TARGET_RATIO = 2.0


def populate(count: int) -> None:
    from django.db import connection

    from audit.chain import content_of, current_key_id, keyed_hash
    from audit.models import GENESIS_HASH

    key_id, previous = current_key_id(), GENESIS_HASH
    began = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    columns = (
        "occurred_at, actor_id, actor_label, action, object_type, object_id, object_repr, "
        "person_id, before, after, detail, request_id, previous_hash, key_id, hash"
    )
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY audit_auditevent ({columns}) FROM STDIN") as copy,
    ):
        for n in range(count):
            values = [
                began + datetime.timedelta(milliseconds=37 * n),
                None,
                "bench",
                "person.updated",
                "consent.person",
                str(n % 5000),
                f"Person {n % 5000}",
                n % 5000,
                {"email": f"old{n}@example.com", "status": "draft"},
                {"email": f"new{n}@example.com", "status": "submitted"},
                {"note": "benchmark event", "n": n},
                f"req-{n}",
                previous,
                key_id,
            ]
            digest = keyed_hash(content_of(values))
            copy.write_row(
                [*values[:8], *(json.dumps(v) for v in values[8:11]), *values[11:], digest]
            )
            previous = digest


def _median_seconds(work: Callable[[], object]) -> float:
    durations = []
    for _ in range(RUNS):
        began = time.monotonic()
        work()
        durations.append(time.monotonic() - began)
    return statistics.median(durations)


def read_as_the_check_does() -> None:
    """Read every event with the check's own query and cursor, doing nothing else: the floor."""
    from django.db import connection, transaction

    from audit.verification import _CHUNK, _SELECT_AFTER

    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(_SELECT_AFTER, [0])
        while cursor.fetchmany(_CHUNK):
            pass


def read_with_the_orm() -> None:
    """Read every event through the ORM's ``values_list``: what the check's target is set
    against."""
    from audit.models import AuditEvent

    for _ in (
        AuditEvent.objects.order_by("pk")
        .values_list("pk", "hash", "occurred_at", "before", "after", "detail", "action")
        .iterator(chunk_size=5000)
    ):
        pass


def run() -> list[Result]:
    from audit.verification import verify_chain

    populate(EVENTS)
    report = verify_chain(full=True)
    if not report.intact or report.events != EVENTS:
        raise RuntimeError(f"the benchmark's chain does not verify: {report.problems[:3]}")
    read_seconds = _median_seconds(read_as_the_check_does)
    orm_seconds = _median_seconds(read_with_the_orm)
    check_seconds = _median_seconds(lambda: verify_chain(full=True))
    ratio = check_seconds / orm_seconds
    return [
        Result(
            NAME,
            f"read {EVENTS:,} events, the check's query alone (the floor)",
            f"{EVENTS / read_seconds:,.0f}/s",
        ),
        Result(NAME, "read them with the ORM's values_list", f"{EVENTS / orm_seconds:,.0f}/s"),
        Result(NAME, "verify_audit --full", f"{EVENTS / check_seconds:,.0f}/s"),
        Result(NAME, "check time / floor read time", f"{check_seconds / read_seconds:.2f}"),
        Result(
            NAME,
            "check time / ORM read time",
            f"{ratio:.2f}",
            f"<= {TARGET_RATIO:.1f}",
            ratio <= TARGET_RATIO,
        ),
    ]
