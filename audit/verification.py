"""Checking the audit trail's keyed hash chain, against the chain key and the anchors.

Each event's hash is an HMAC of its content and the previous event's hash (``audit.chain``), so
without the key nobody can change, insert or remove an event and leave a chain that verifies;
removing the newest events is revealed by the anchors (``audit.anchors``). The walk streams
plain tuples in id order (on PostgreSQL one query on a server-side cursor, each chunk read by a
thread while the one before is hashed; no model instances) and writes each event's canonical
bytes straight from them (``chain_digest``), so its pace is near the database's read.

By default the walk starts at the newest *verified* anchor (one a previous check wrote for the
head it had walked to) whose event still has the anchored hash: an incremental check. Older
anchors are checked by a lookup each. ``full=True`` walks from the first event.
"""

from __future__ import annotations

import datetime
import hmac
import json
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction

from audit.anchors import Anchor
from audit.chain import CONTENT_FIELDS, UnknownChainKey, chain_digest, content_of, keyed_hash
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
_PREVIOUS_AT = CONTENT_FIELDS.index("previous_hash")
_KEY_AT = CONTENT_FIELDS.index("key_id")
_ACTION_AT = CONTENT_FIELDS.index("action")
_T = TypeVar("_T")


# ``_COLUMNS`` as ``_rows_after`` reads them on PostgreSQL: the time as text, the three JSON
# columns as the text of one array (SQL NULL as JSON null: both read back as None).
_SELECT_AFTER = """
    SELECT id, hash, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'),
        actor_id, actor_label, action, object_type, object_id, object_repr, person_id,
        '[' || coalesce(before::text, 'null') || ',' || coalesce(after::text, 'null') || ','
            || coalesce(detail::text, 'null') || ']',
        request_id, previous_hash, key_id
    FROM audit_auditevent WHERE id > %s ORDER BY id
"""


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
    # Closed here, even when a check raises: its transaction ends with it.
    with closing(_rows_after(start.last_id if start else 0)) as rows:
        _walk(
            rows,
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
    rows: Iterable[tuple[Any, ...]],
    anchors: Sequence[Anchor],
    start: Anchor | None,
    report: ChainReport,
    *,
    keys: dict[str, bytes],
) -> None:
    """Check the events after ``start`` (all without it), ``rows`` as ``_rows_after`` streams
    them: each hash, link and anchor.

    A link to the event before the previous one means the previous one was slipped in
    (inserted); a link to anything else, that events between the two were removed.
    """
    digest = chain_digest(keys)
    expected = start.hash if start else GENESIS_HASH
    count = start.count if start else 0
    pending = list(anchors)
    prev: tuple[int, datetime.datetime | str, str] | None = None  # id, time, the hash it followed
    prev_problem: Problem | None = None
    for row in rows:
        pk, stored, occurred_at, values = row[0], row[1], row[2], row[2:]
        count += 1
        problem = _own_problem(pk, values, stored, digest)
        if values[_PREVIOUS_AT] != expected:
            if prev is not None and values[_PREVIOUS_AT] == prev[2]:
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
        report.head_key_id = values[_KEY_AT]
    if prev_problem is not None:
        report.add(prev_problem)
    for anchor in pending:
        _check_anchor(anchor, None, 0, None, report)
    report.events = count - (start.count if start else 0)
    report.total = count
    report.head = expected


def _rows_after(last_id: int) -> Generator[tuple[Any, ...]]:
    """``_COLUMNS`` of the events after ``last_id``, in order, streamed.

    On PostgreSQL: one query in a transaction (a plain server-side cursor streams; a holdable
    one, what ``iterator()`` opens in autocommit, is first copied whole on the server), read in
    chunks of ``_CHUNK`` by a thread while the previous chunk is hashed. The database itself
    writes ``occurred_at`` as ``isoformat()`` does and hands the JSON columns over as text:
    parsing a timestamp and going through the JSON field's converter cost more than the HMAC.
    """
    if connection.vendor != "postgresql":
        events = AuditEvent.objects.filter(pk__gt=last_id).order_by("pk")
        yield from events.values_list(*_COLUMNS).iterator(chunk_size=_CHUNK)
        return
    decode = json.JSONDecoder().raw_decode
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(_SELECT_AFTER, [last_id])
        for chunk in _read_ahead(lambda: cursor.fetchmany(_CHUNK)):
            for (
                pk,
                stored,
                moment,
                actor_id,
                actor_label,
                action,
                object_type,
                object_id,
                object_repr,
                person_id,
                json_values,
                request_id,
                previous_hash,
                key_id,
            ) in chunk:
                before, after, detail = decode(json_values)[0]
                yield (
                    pk,
                    stored,
                    # isoformat() leaves out zero microseconds, then writes the UTC offset.
                    (moment[:-7] if moment.endswith(".000000") else moment) + "+00:00",
                    actor_id,
                    actor_label,
                    action,
                    object_type,
                    object_id,
                    object_repr,
                    person_id,
                    before,
                    after,
                    detail,
                    request_id,
                    previous_hash,
                    key_id,
                )


def _read_ahead(fetch: Callable[[], list[_T]]) -> Iterator[list[_T]]:
    """``fetch()``'s chunks until an empty one, the next fetched by a thread while the caller
    works on this one (psycopg lets go of the GIL while it waits for the database)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-audit-read") as reader:
        next_chunk = reader.submit(fetch)
        while chunk := next_chunk.result():
            next_chunk = reader.submit(fetch)
            yield chunk


def _own_problem(
    pk: int, values: Sequence[Any], stored: str, digest: Callable[[Sequence[Any]], str]
) -> Problem | None:
    occurred_at = values[0]
    try:
        computed = digest(values)
    except UnknownChainKey:
        return Problem(
            KEY_UNKNOWN,
            pk,
            occurred_at,
            f"Event #{pk} ({_at(occurred_at)}) names the chain key '{values[_KEY_AT]}', which "
            "this portal does not hold (AUDIT_CHAIN_KEY, AUDIT_CHAIN_RETIRED_KEYS): it cannot "
            "be checked.",
        )
    if hmac.compare_digest(computed, stored):
        return None
    return Problem(
        CHANGED,
        pk,
        occurred_at,
        f"Event #{pk} ({_at(occurred_at)}, {values[_ACTION_AT]}) was changed after it was "
        "written (or written without the chain key): its hash is not its content's.",
    )
