"""Benchmark 5: ``verify_audit --full`` on a long audit chain.

Writes ``EVENTS`` events of the keyed chain straight into the table (COPY; each hashed as
``audit_record`` would), then times the full check against reading the same rows alone (the
database's pace, the floor). Target: the check takes at most twice as long as the read, i.e.
Python's HMAC work does not dominate.
"""

from __future__ import annotations

import datetime
import json
import os
import time

from benchmarks.results import Result

NAME = "audit chain"
EVENTS = int(os.environ.get("BENCH_AUDIT_EVENTS", "250000"))
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


def run() -> list[Result]:
    from audit.models import AuditEvent
    from audit.verification import verify_chain

    populate(EVENTS)
    began = time.monotonic()
    read = sum(
        1
        for _ in AuditEvent.objects.order_by("pk")
        .values_list("pk", "hash", "occurred_at", "before", "after", "detail", "action")
        .iterator(chunk_size=5000)
    )
    read_seconds = time.monotonic() - began
    began = time.monotonic()
    report = verify_chain(full=True)
    check_seconds = time.monotonic() - began
    if not report.intact or report.events != read:
        raise RuntimeError(f"the benchmark's chain does not verify: {report.problems[:3]}")
    ratio = check_seconds / read_seconds
    return [
        Result(NAME, f"read {read:,} events (the floor)", f"{read / read_seconds:,.0f}/s"),
        Result(NAME, "verify_audit --full", f"{report.events / check_seconds:,.0f}/s"),
        Result(
            NAME,
            "check time / read time",
            f"{ratio:.2f}",
            f"<= {TARGET_RATIO:.1f}",
            ratio <= TARGET_RATIO,
        ),
    ]
