"""Raw SQL against consent records, as any client of the database could run it (issue 13).

Each ``Attack`` makes its records (factories), then changes them by raw SQL, in one
transaction; ``outcome`` answers the database's refusal, or ``ALLOWED``. The PostgreSQL tests
run them in the test database; on SQLite, ``python -m tests.consent.consent_attacks`` runs them
all in a fresh database migrated in a temporary folder and prints the outcomes as JSON.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ALLOWED = "ALLOWED"
STATUSES = [
    "draft",
    "pending_review",
    "approved",
    "rejected",
    "revoked",
    "expired",
    "superseded",
]
NOW = datetime.datetime(2026, 11, 24, 12, tzinfo=datetime.UTC)

# Fragments of the database's refusals (the triggers' messages).
LIFECYCLE = "moves only along its lifecycle"
WRITTEN_ONCE = "written once, by their own transition"
KEPT = "is never deleted"
CREATED_DRAFT = "created as a draft"
USES_LOCKED = "uses of a submitted consent record never change"


@dataclass(frozen=True)
class Attack:
    name: str
    refused_with: str | None  # a fragment of the refusal; None: the database allows it
    run: Callable[[], None]


def _sql(statement: str, *params: Any) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement, list(params))


def _record(status: str, **kwargs: Any) -> Any:
    """A record in ``status``, with the columns its transitions wrote on the way."""
    from tests.factories import ConsentRecordFactory

    written: dict[str, Any] = {}
    if status not in ("draft", "pending_review"):
        written["reviewed_at"] = NOW
    if status == "revoked":
        written.update(revoked_at=NOW, revocation_reason="By letter.")
    return ConsentRecordFactory(status=status, **written, **kwargs)


def _rewrite_approved_through_draft() -> None:
    """The issue's three UPDATEs: back to draft, new terms and uses, approved again."""
    record = _record("approved", uses=1)
    _sql("UPDATE consent_consentrecord SET status = 'draft' WHERE id = %s", record.pk)
    _sql(
        "UPDATE consent_consentrecord SET territory = 'Worldwide incl. Mars', "
        "allows_model_training = %s, expires_on = NULL WHERE id = %s",
        True,
        record.pk,
    )
    _sql(
        "UPDATE consent_consentuse SET description = 'Anything at all' WHERE consent_id = %s",
        record.pk,
    )
    _sql("UPDATE consent_consentrecord SET status = 'approved' WHERE id = %s", record.pk)


def _delete_after_status_flip() -> None:
    record = _record("approved", uses=1)
    _sql("UPDATE consent_consentrecord SET status = 'draft' WHERE id = %s", record.pk)
    _sql("DELETE FROM consent_consentuse WHERE consent_id = %s", record.pk)
    _sql("DELETE FROM consent_consentrecord WHERE id = %s", record.pk)


def _delete(status: str, *, uses: int = 0) -> Callable[[], None]:
    def run() -> None:
        record = _record(status, uses=uses)
        _sql("DELETE FROM consent_consentuse WHERE consent_id = %s", record.pk)
        _sql("DELETE FROM consent_consentrecord WHERE id = %s", record.pk)

    return run


def _move(start: str, target: str) -> Callable[[], None]:
    """``start`` to ``target`` in one UPDATE, with what the target's checks need."""

    def run() -> None:
        record = _record(start)
        columns: dict[str, Any] = {"status": target}
        if target in ("approved", "rejected") and start in ("draft", "pending_review"):
            columns["reviewed_at"] = NOW
        if target == "revoked":
            columns.update(revoked_at=NOW, revocation_reason="By letter.")
        if target in ("revoked", "expired", "superseded"):
            columns["ended_at"] = NOW
        assignments = ", ".join(f"{column} = %s" for column in columns)
        _sql(
            f"UPDATE consent_consentrecord SET {assignments} WHERE id = %s",  # noqa: S608 - ours
            *columns.values(),
            record.pk,
        )

    return run


def _update(status: str, assignments: str, *params: Any, **kwargs: Any) -> Callable[[], None]:
    def run() -> None:
        record = _record(status, **kwargs)
        _sql(
            f"UPDATE consent_consentrecord SET {assignments} WHERE id = %s",  # noqa: S608 - ours
            *params,
            record.pk,
        )

    return run


def _create_approved() -> None:
    from consent.models import ConsentRecord, Person

    ConsentRecord.objects.create(  # an INSERT: save() checks nothing of a new row
        person=Person.objects.create(legal_name="Forged Person"),
        consent_text_version="forged",
        intended_uses="Anything.",
        starts_on=NOW.date(),
        capture_method="e_signature",
        status="approved",
        reviewed_at=NOW,
    )


def _move_use_onto_approved() -> None:
    draft = _record("draft", uses=1)
    approved = _record("approved", uses=1)
    _sql(
        "UPDATE consent_consentuse SET consent_id = %s WHERE consent_id = %s",
        approved.pk,
        draft.pk,
    )


def transitions() -> list[tuple[str, str]]:
    from consent.services import CONSENT_TRANSITIONS

    return [
        (start, target)
        for starts, target in CONSENT_TRANSITIONS.values()
        for start in sorted(starts)
    ]


def _attacks() -> list[Attack]:
    allowed = transitions()
    attacks = [
        Attack(
            "rewrite an approved record through draft", LIFECYCLE, _rewrite_approved_through_draft
        ),
        Attack(
            "delete an approved record after a status flip", LIFECYCLE, _delete_after_status_flip
        ),
        Attack("create a record already approved", CREATED_DRAFT, _create_approved),
        Attack("move a use onto an approved record", USES_LOCKED, _move_use_onto_approved),
        Attack("delete the uses of an approved record", USES_LOCKED, _delete("approved", uses=1)),
        Attack(
            "rewrite the review of an approved record",
            WRITTEN_ONCE,
            _update("approved", "review_note = %s, reviewed_by_id = NULL", "By the board."),
        ),
        Attack(
            "review a record still pending, without deciding",
            WRITTEN_ONCE,
            _update("pending_review", "reviewed_at = %s", NOW),
        ),
        Attack(
            "rewrite who submitted a record",
            WRITTEN_ONCE,
            _update("pending_review", "submitted_at = %s", NOW),
        ),
        Attack(
            "erase a revocation",
            WRITTEN_ONCE,
            _update("revoked", "revocation_reason = '', revocation_channel = 'email'"),
        ),
        Attack(
            "end an approved record without a transition",
            WRITTEN_ONCE,
            _update("approved", "ended_at = %s", NOW),
        ),
        Attack(
            "clear the expiry warning to send it again",
            WRITTEN_ONCE,
            _update("approved", "expiry_warning_sent_at = NULL", expiry_warning_sent_at=NOW),
        ),
        # What the services and the admin do stays allowed.
        Attack("edit a draft", None, _update("draft", "territory = 'Europe'")),
        Attack("delete a draft and its uses", None, _delete("draft", uses=1)),
        Attack("delete a rejected record", None, _delete("rejected")),
        Attack(
            "warn once that an approved record ends soon",
            None,
            _update("approved", "expiry_warning_sent_at = %s", NOW),
        ),
    ]
    attacks += [
        Attack(f"delete a record {status}", KEPT, _delete(status))
        for status in ("approved", "revoked", "expired", "superseded")
    ]
    attacks += [
        Attack(
            f"status {start} to {target}",
            None if (start, target) in allowed else LIFECYCLE,
            _move(start, target),
        )
        for start in STATUSES
        for target in STATUSES
        if start != target
    ]
    return attacks


@functools.cache
def attacks() -> dict[str, Attack]:
    """Every attack by name (made once Django is set up: the lifecycle is the services')."""
    return {attack.name: attack for attack in _attacks()}


def outcome(attack: Attack) -> str:
    """The database's refusal of ``attack``, or ``ALLOWED`` (its changes are rolled back)."""
    from django.db import DatabaseError, transaction

    class Undo(Exception):
        pass

    try:
        with transaction.atomic():
            attack.run()
            raise Undo
    except Undo:
        return ALLOWED
    except DatabaseError as error:
        return str(error)


def main() -> None:
    """Migrate a fresh SQLite database in the folder ``argv[1]``, run every attack, print JSON."""
    folder = sys.argv[1]
    os.environ.update(
        DEBUG="true",
        PORTAL_VAR_DIR=folder,
        DATABASE_URL=f"sqlite:///{folder}/portal.sqlite3",
        DJANGO_SETTINGS_MODULE="portal.settings",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    print(json.dumps({name: outcome(attack) for name, attack in attacks().items()}))


if __name__ == "__main__":
    main()
