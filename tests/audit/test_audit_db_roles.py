"""The portal's production database role cannot rewrite history (PostgreSQL): after
``grant_portal_role`` it may read and append audit events, and nothing else with them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit.chain import current_key_id
from audit.dbroles import audit_table_powers, check_portal_role
from audit.models import AuditEvent
from audit.services import audit_record
from audit.verification import verify_chain
from tests.conftest import unavailable
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def portal_role() -> Iterator[str]:
    """A throwaway login role with the portal's grants, dropped afterwards."""
    if connection.vendor != "postgresql":
        unavailable("database roles need PostgreSQL")
    role = f"portal_test_{uuid.uuid4().hex[:10]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        call_command("grant_portal_role", role)
        yield role
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'DROP OWNED BY "{role}"')
            cursor.execute(f'DROP ROLE "{role}"')


@pytest.fixture
def as_role(portal_role: str) -> Iterator[psycopg.Connection]:
    db = connection.settings_dict
    with psycopg.connect(
        dbname=db["NAME"],
        user=portal_role,
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        autocommit=True,
    ) as conn:
        yield conn


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only",
        "ALTER TABLE audit_auditevent DISABLE TRIGGER ALL",
        "DROP TRIGGER audit_event_append_only ON audit_auditevent",
        "UPDATE audit_auditevent SET action = 'rewritten'",
        "DELETE FROM audit_auditevent",
        "TRUNCATE audit_auditevent",
    ],
)
def test_the_portals_role_cannot_touch_an_event(as_role, statement):
    person = PersonFactory()
    audit_record(action="person.created", obj=person, person_id=person.pk)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role.execute(statement)
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["person.created"]


def test_the_portals_role_appends_events_and_works_on_its_tables(as_role):
    person = PersonFactory()
    first = audit_record(action="person.created", obj=person, person_id=person.pk)
    event = AuditEvent(
        occurred_at=timezone.now(),
        actor_label="portal role",
        action="person.viewed",
        object_type="consent.person",
        object_id=str(person.pk),
        person_id=person.pk,
        previous_hash=as_role.execute(
            "SELECT hash FROM audit_auditevent ORDER BY id DESC LIMIT 1"
        ).fetchone()[0],
        key_id=current_key_id(),
    )
    event.hash = event.compute_hash()
    columns = [f.column for f in AuditEvent._meta.concrete_fields if f.column != "id"]
    values = [f.get_db_prep_save(getattr(event, f.attname), connection)
              for f in AuditEvent._meta.concrete_fields if f.column != "id"]  # fmt: skip
    as_role.execute(
        f"INSERT INTO audit_auditevent ({', '.join(columns)}) "  # noqa: S608 - our column names
        f"VALUES ({', '.join(['%s'] * len(columns))})",
        values,
    )
    as_role.execute("UPDATE consent_person SET notes = 'seen' WHERE id = %s", [person.pk])
    report = verify_chain()
    assert report.intact and report.events == 2 and report.head != first.hash
    # ...and the deployment check passes for it, while it refuses the owner.
    (error,) = check_portal_role(databases=["default"])
    assert error.id == "audit.E001" and "is a superuser" in error.msg
    assert audit_table_powers(as_role.cursor()) == []


def test_grant_portal_role_prints_its_sql_and_refuses_a_strange_role_name(capsys):
    if connection.vendor != "postgresql":
        unavailable("database roles need PostgreSQL")
    call_command("grant_portal_role", "portal_app", "--print")
    sql = capsys.readouterr().out
    assert 'GRANT SELECT, INSERT ON "audit_auditevent" TO "portal_app";' in sql
    assert 'GRANT SELECT, INSERT, UPDATE, DELETE ON "consent_person" TO "portal_app";' in sql
    assert 'UPDATE, DELETE ON "audit_auditevent"' not in sql
    with pytest.raises(CommandError, match="Not a role name"):
        call_command("grant_portal_role", 'x"; DROP TABLE consent_person; --')
