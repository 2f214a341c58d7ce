"""Triggers that hold a consent record to its lifecycle for every client of the database.

Migration 0003 froze a record's terms once it left draft, but left the status free: three raw
UPDATEs (back to draft, rewrite the terms, approved again) forged an approved record with no
audit event. Here, on PostgreSQL and SQLite:

- a record is created as a draft, and its status moves only along ``CONSENT_TRANSITIONS``
  (never back to draft); a status outside the lifecycle is the ``consent_status_valid`` check's;
- each lifecycle column (``ConsentRecord.LIFECYCLE_WRITTEN_BY``) is written only by the
  transitions that write it, so once; ``expiry_warning_sent_at`` only from empty;
- an approved, revoked, expired or superseded record is never deleted (nor its uses: 0003);
- a use is never moved onto a submitted record (SQLite's 0003 trigger checked the old one only).

The lists below are literals, written from ``CONSENT_TRANSITIONS`` and ``LIFECYCLE_WRITTEN_BY``
when this migration was written (a migration never follows later code);
``tests/test_consent_lifecycle_database.py`` fails when they drift apart: a change of the
lifecycle then comes with a migration of its own.
"""

from django.db import migrations

from portal.dbtriggers import run_sql_by_vendor

STATUSES = [
    "draft",
    "pending_review",
    "approved",
    "rejected",
    "revoked",
    "expired",
    "superseded",
]
# action: (statuses it may start from, status it ends in), as consent.services has it.
TRANSITIONS = {
    "submit": (["draft"], "pending_review"),
    "approve": (["pending_review"], "approved"),
    "reject": (["pending_review"], "rejected"),
    "revoke": (["approved"], "revoked"),
    "expire": (["approved"], "expired"),
    "supersede": (["approved"], "superseded"),
}
# column: the actions whose UPDATE may write it (none: written once, from empty).
WRITTEN_BY = {
    "submitted_by_id": ["submit"],
    "submitted_at": ["submit"],
    "reviewed_by_id": ["approve", "reject"],
    "reviewed_at": ["approve", "reject"],
    "review_note": ["approve", "reject"],
    "revoked_at": ["revoke"],
    "revoked_by_id": ["revoke"],
    "revocation_channel": ["revoke"],
    "revocation_requested_at": ["revoke"],
    "revocation_reason": ["revoke"],
    "ended_at": ["revoke", "expire", "supersede"],
    "expiry_warning_sent_at": [],
}
# Agreements that were in force: evidence, kept for good.
KEPT = ["approved", "revoked", "expired", "superseded"]

_CREATED_MESSAGE = "a consent record is created as a draft; its services move it on"
_STATUS_MESSAGE = (
    "the status of a consent record moves only along its lifecycle, never back to draft"
)
_COLUMN_MESSAGE = (
    "the submission, review, revocation and end of a consent record are written once, "
    "by their own transition"
)
_KEPT_MESSAGE = "an approved, revoked, expired or superseded consent record is never deleted"
_USE_MESSAGE = "the uses of a submitted consent record never change"


def _quoted(values: list[str]) -> str:
    return ", ".join(f"'{value}'" for value in values)


def _steps(actions: list[str]) -> str:
    """The ``old>new`` status pairs of ``actions``, as an SQL list."""
    return _quoted(
        [f"{start}>{TRANSITIONS[a][1]}" for a in actions for start in TRANSITIONS[a][0]]
    )


_STEP = "OLD.status || '>' || NEW.status"
_BAD_STATUS = (
    f"NEW.status <> OLD.status AND NEW.status IN ({_quoted(STATUSES)}) "
    f"AND {_STEP} NOT IN ({_steps(list(TRANSITIONS))})"
)


def _bad_columns(distinct: str) -> str:
    """True when an UPDATE writes a lifecycle column outside its transitions."""
    return " OR ".join(
        f"(NEW.{column} {distinct} OLD.{column} AND {_STEP} NOT IN ({_steps(actions)}))"
        if actions
        else f"(OLD.{column} IS NOT NULL AND NEW.{column} {distinct} OLD.{column})"
        for column, actions in WRITTEN_BY.items()
    )


_KEPT_STATUS = f"OLD.status IN ({_quoted(KEPT)})"
_RAISE = "USING ERRCODE = 'integrity_constraint_violation'"

_POSTGRESQL_UP = f"""
CREATE OR REPLACE FUNCTION consent_record_lifecycle() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'draft' THEN
            RAISE EXCEPTION '{_CREATED_MESSAGE} (not %)', NEW.status {_RAISE};
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        IF {_KEPT_STATUS} THEN
            RAISE EXCEPTION '{_KEPT_MESSAGE} (this one is %)', OLD.status {_RAISE};
        END IF;
        RETURN OLD;
    END IF;
    IF {_BAD_STATUS} THEN
        RAISE EXCEPTION '{_STATUS_MESSAGE} (% to %)', OLD.status, NEW.status {_RAISE};
    END IF;
    IF {_bad_columns("IS DISTINCT FROM")} THEN
        RAISE EXCEPTION '{_COLUMN_MESSAGE}' {_RAISE};
    END IF;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER consent_record_lifecycle BEFORE INSERT OR UPDATE OR DELETE
    ON consent_consentrecord FOR EACH ROW EXECUTE FUNCTION consent_record_lifecycle();
"""
_POSTGRESQL_DOWN = """
DROP TRIGGER IF EXISTS consent_record_lifecycle ON consent_consentrecord;
DROP FUNCTION IF EXISTS consent_record_lifecycle();
"""
_SQLITE_TRIGGERS = {
    "consent_record_created_draft": (
        "INSERT ON consent_consentrecord",
        "NEW.status <> 'draft'",
        _CREATED_MESSAGE,
    ),
    "consent_record_status_lifecycle": (
        "UPDATE ON consent_consentrecord",
        _BAD_STATUS,
        _STATUS_MESSAGE,
    ),
    "consent_record_columns_written_once": (
        "UPDATE ON consent_consentrecord",
        # Not for a move the status trigger refuses: its message says what is wrong.
        f"NOT ({_BAD_STATUS}) AND ({_bad_columns('IS NOT')})",
        _COLUMN_MESSAGE,
    ),
    "consent_record_kept": ("DELETE ON consent_consentrecord", _KEPT_STATUS, _KEPT_MESSAGE),
    "consent_use_locked_update_new": (
        "UPDATE ON consent_consentuse",
        "(SELECT status FROM consent_consentrecord WHERE id = NEW.consent_id) <> 'draft'",
        _USE_MESSAGE,
    ),
}
_SQLITE_UP = [
    f"CREATE TRIGGER {name} BEFORE {event} WHEN {condition} "
    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
    for name, (event, condition, message) in _SQLITE_TRIGGERS.items()
]
_SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {name}" for name in _SQLITE_TRIGGERS]


class Migration(migrations.Migration):
    dependencies = [("consent", "0009_invitations_and_emails_moved_out")]

    operations = [
        run_sql_by_vendor(
            {"postgresql": _POSTGRESQL_UP, "sqlite": _SQLITE_UP},
            {"postgresql": _POSTGRESQL_DOWN, "sqlite": _SQLITE_DOWN},
        )
    ]
