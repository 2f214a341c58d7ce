"""Checking the audit trail's keyed hash chain, against the chain key and the anchors.

Each event's hash is an HMAC of its content and the previous event's hash (``audit.chain``), so
without the key nobody can change, insert or remove an event and leave a chain that verifies;
removing the newest events is revealed by the anchors (``audit.anchors``). The walk streams
plain tuples in id order (``values_list(...).iterator()``: a server-side cursor on PostgreSQL,
no model instances), so its pace is set by the database read and one HMAC per event.

By default the walk starts at the newest *verified* anchor (one a previous check wrote for the
head it had walked to) whose event still has the anchored hash: an incremental check. Older
anchors are checked by a lookup each. ``full=True`` walks from the first event.
"""

from __future__ import annotations

import datetime
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Func, TextField
from django.db.models.functions import Cast

from audit.anchors import Anchor
from audit.chain import CONTENT_FIELDS, UnknownChainKey, content_of, keyed_hash
from audit.models import GENESIS_HASH, AuditEvent

CHANGED = "changed"
REMOVED = "removed"
INSERTED = "inserted"
KEY_UNKNOWN = "key unknown"
# Past this many problems only the count goes on (a chain re-hashed from event k fails at every
# event after it: the first problems say where).
MAX_PROBLEMS = 100
_CHUNK = 5000
_COLUMNS = ("pk", "hash", *CONTENT_FIELDS)
_JSON_FIELDS = ("before", "after", "detail")


@dataclass(frozen=True)
class Problem:
    """What broke the chain, and at which event (``event_id`` as the database numbers it)."""

    kind: str
    event_id: int
    occurred_at: datetime.datetime | str | None
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class ChainReport:
    """The outcome of a check: how many events were walked, from which anchor, what broke."""

    events: int = 0
    head: str = GENESIS_HASH
    head_id: int | None = None
    head_key_id: str = ""
    # Events from the first to the head (those before the walk's start as its anchor counted).
    total: int = 0
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    anchor_found: bool | None = None
    anchors_checked: int = 0
    started_after: Anchor | None = None

    @property
    def intact(self) -> bool:
        return not self.problems and self.anchor_found is not False

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems += 1


def _at(moment: datetime.datetime | str | None) -> str:
    if isinstance(moment, str):
        return moment[:19].replace("T", " ")
    return f"{moment:%Y-%m-%d %H:%M:%S}" if moment else "time unknown"


def verify_chain(
    *, anchor: str = "", anchors: Sequence[Anchor] = (), full: bool = True
) -> ChainReport:
    """Check the chain's keyed hashes and links, and that every anchor still holds.

    ``anchor``: a head hash reported earlier; that event must still be in the chain. ``anchors``:
    heads recorded outside the database (``read_anchors``). ``full=False`` walks only the events
    after the newest verified anchor that still holds.
    """
    report = ChainReport()
    if anchor:
        report.anchor_found = AuditEvent.objects.filter(hash=anchor).exists()
    ordered = sorted(anchors, key=lambda a: a.last_id)
    start = _newest_holding_anchor([a for a in ordered if a.verified]) if not full else None
    earlier = [a for a in ordered if start is not None and a.last_id <= start.last_id]
    _check_by_lookup(earlier, start, report)
    report.started_after = start
    _walk(
        [a for a in ordered if a not in earlier],
        start,
        report,
        keys=settings.AUDIT_CHAIN_KEYS,
    )
    return report


def _newest_holding_anchor(anchors: Sequence[Anchor]) -> Anchor | None:
    """The newest of ``anchors`` whose event still has its hash and verifies under the key."""
    for candidate in reversed(anchors):
        row = AuditEvent.objects.filter(pk=candidate.last_id).values_list(*_COLUMNS).first()
        if row is None or row[1] != candidate.hash:
            continue
        try:
            if keyed_hash(content_of(row[2:])) == candidate.hash:
                return candidate
        except UnknownChainKey:
            continue
    return None


def _check_by_lookup(anchors: Sequence[Anchor], start: Anchor | None, report: ChainReport) -> None:
    """Anchors up to the walk's start: each event still has its anchored hash, and as many
    events lead up to the start as its anchor counted (one count: it covers the older ones)."""
    if not anchors:
        return
    stored = dict(
        AuditEvent.objects.filter(pk__in=[a.last_id for a in anchors]).values_list("pk", "hash")
    )
    for a in anchors:
        count = AuditEvent.objects.filter(pk__lte=a.last_id).count() if a == start else a.count
        _check_anchor(a, stored.get(a.last_id), count, None, report)


def _check_anchor(
    anchor: Anchor,
    stored_hash: str | None,
    count: int,
    occurred_at: datetime.datetime | str | None,
    report: ChainReport,
) -> None:
    report.anchors_checked += 1
    if stored_hash is None:
        report.add(
            Problem(
                REMOVED,
                anchor.last_id,
                None,
                f"Event #{anchor.last_id} was removed: the anchor of {anchor.at} names it as "
                f"the head (event {anchor.count}), and it is no longer in the trail.",
            )
        )
    elif stored_hash != anchor.hash:
        report.add(
            Problem(
                CHANGED,
                anchor.last_id,
                occurred_at,
                f"Event #{anchor.last_id} ({_at(occurred_at)}) was changed: its hash is not the "
                f"one the anchor of {anchor.at} recorded.",
            )
        )
    elif count != anchor.count:
        kind = REMOVED if count < anchor.count else INSERTED
        report.add(
            Problem(
                kind,
                anchor.last_id,
                occurred_at,
                f"Up to event #{anchor.last_id} the trail holds {count} events, the anchor of "
                f"{anchor.at} counted {anchor.count}: events were {kind} before it.",
            )
        )


def _walk(
    anchors: Sequence[Anchor],
    start: Anchor | None,
    report: ChainReport,
    *,
    keys: dict[str, bytes],
) -> None:
    """Stream the events after ``start`` (all without it), checking each hash, link and anchor.

    A link to the event before the previous one means the previous one was slipped in
    (inserted); a link to anything else, that events between the two were removed.
    """
    rows = _rows_after(start.last_id if start else 0)
    expected = start.hash if start else GENESIS_HASH
    count = start.count if start else 0
    pending = list(anchors)
    prev: tuple[int, datetime.datetime | str, str] | None = None  # id, time, the hash it followed
    prev_problem: Problem | None = None
    for row in rows:
        pk, stored, occurred_at = row[0], row[1], row[2]
        content = content_of(row[2:])
        count += 1
        problem = _own_problem(pk, occurred_at, content, stored, keys)
        if content["previous_hash"] != expected:
            if prev is not None and content["previous_hash"] == prev[2]:
                prev_problem = Problem(
                    INSERTED,
                    prev[0],
                    prev[1],
                    f"Event #{prev[0]} ({_at(prev[1])}) was inserted: the event after it "
                    f"(#{pk}) follows the one before it.",
                )
            else:
                after = f"#{prev[0]}" if prev else "the start of the trail"
                report.add(
                    Problem(
                        REMOVED,
                        pk,
                        occurred_at,
                        f"Event #{pk} ({_at(occurred_at)}) does not follow the event before it "
                        f"({after}): events between them were removed or reordered.",
                    )
                )
        if prev_problem is not None:
            report.add(prev_problem)
        while pending and pending[0].last_id < pk:
            _check_anchor(pending.pop(0), None, 0, None, report)
        while pending and pending[0].last_id == pk:  # anchors of a head that did not move
            _check_anchor(pending.pop(0), stored, count, occurred_at, report)
        prev, prev_problem, expected = (pk, occurred_at, expected), problem, stored
        report.head_id = pk
        report.head_key_id = content["key_id"]
    if prev_problem is not None:
        report.add(prev_problem)
    for anchor in pending:
        _check_anchor(anchor, None, 0, None, report)
    report.events = count - (start.count if start else 0)
    report.total = count
    report.head = expected


def _rows_after(last_id: int) -> Iterable[tuple[Any, ...]]:
    """``_COLUMNS`` of the events after ``last_id``, in order, streamed.

    On PostgreSQL the database itself writes ``occurred_at`` as Python's ``isoformat()`` and
    hands the JSON columns over as text: parsing a timestamp and going through the JSON field's
    converter cost more than the HMAC.
    """
    events = AuditEvent.objects.filter(pk__gt=last_id).order_by("pk")
    if connection.vendor != "postgresql":
        return events.values_list(*_COLUMNS).iterator(chunk_size=_CHUNK)
    iso = Func(
        F("occurred_at"),
        template="to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US')",
        output_field=TextField(),
    )
    # One JSON text for the three JSON columns: one parse per event instead of three.
    json_columns = Cast(Func(*_JSON_FIELDS, function="jsonb_build_array"), TextField())
    first, last = _COLUMNS.index("occurred_at"), _COLUMNS.index(_JSON_FIELDS[0])
    columns = [*_COLUMNS[:first], "_at", *_COLUMNS[first + 1 : last], "_json"]
    columns += _COLUMNS[last + len(_JSON_FIELDS) :]
    rows = (
        events.annotate(_at=iso, _json=json_columns)
        .values_list(*columns)
        .iterator(chunk_size=_CHUNK)
    )
    return _parsed(first, last, rows)


def _parsed(at: int, json_at: int, rows: Iterable[tuple[Any, ...]]) -> Iterable[tuple[Any, ...]]:
    """The rows as ``_COLUMNS``: the JSON columns parsed, the time as ``isoformat()`` writes it
    (no ``.000000`` when the microseconds are 0, then the UTC offset)."""
    decode = json.JSONDecoder().raw_decode
    for row in rows:
        moment = row[at]
        moment = (moment[:-7] if moment.endswith(".000000") else moment) + "+00:00"
        yield (
            *row[:at],
            moment,
            *row[at + 1 : json_at],
            *decode(row[json_at])[0],
            *row[json_at + 1 :],
        )


def _own_problem(
    pk: int,
    occurred_at: datetime.datetime,
    content: dict[str, object],
    stored: str,
    keys: dict[str, bytes],
) -> Problem | None:
    try:
        computed = keyed_hash(content, keys=keys)
    except UnknownChainKey:
        return Problem(
            KEY_UNKNOWN,
            pk,
            occurred_at,
            f"Event #{pk} ({_at(occurred_at)}) names the chain key '{content['key_id']}', which "
            "this portal does not hold (AUDIT_CHAIN_KEY, AUDIT_CHAIN_RETIRED_KEYS): it cannot "
            "be checked.",
        )
    if hmac.compare_digest(computed, stored):
        return None
    return Problem(
        CHANGED,
        pk,
        occurred_at,
        f"Event #{pk} ({_at(occurred_at)}, {content['action']}) was changed after it was "
        "written (or written without the chain key): its hash is not its content's.",
    )
