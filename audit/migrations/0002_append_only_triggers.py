"""Database triggers that refuse UPDATE and DELETE on audit events, for every client of the database.

PostgreSQL: a PL/pgSQL trigger function. SQLite: ``RAISE(ABORT)`` triggers. (TRUNCATE, a table
owner's operation, is not refused: Django's test database flush uses it; ``verify_audit
--anchor`` catches an emptied or shortened trail.)
"""

from django.db import migrations

from portal.dbtriggers import run_sql_by_vendor

_POSTGRESQL_UP = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_event_append_only();
"""
_POSTGRESQL_DOWN = """
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_event_append_only();
"""
_SQLITE_UP = [
    f"""CREATE TRIGGER audit_event_no_{operation.lower()}
    BEFORE {operation} ON audit_auditevent
    BEGIN SELECT RAISE(ABORT, 'audit events are append-only: {operation} refused'); END;"""
    for operation in ("UPDATE", "DELETE")
]
_SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS audit_event_no_update",
    "DROP TRIGGER IF EXISTS audit_event_no_delete",
]


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [
        run_sql_by_vendor(
            {"postgresql": _POSTGRESQL_UP, "sqlite": _SQLITE_UP},
            {"postgresql": _POSTGRESQL_DOWN, "sqlite": _SQLITE_DOWN},
        )
    ]
