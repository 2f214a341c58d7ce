"""The portal's database role in production: it owns nothing and may only append to the audit trail.

Migrations run as an owner role; the portal (web, worker, beat) connects as another role that
``grant_portal_role`` gives what it needs: reading and writing the application's tables, using
their sequences, and on the audit table only SELECT and INSERT. Without ownership it cannot
ALTER the table (switch its triggers off), and without UPDATE, DELETE or TRUNCATE it cannot
touch an event; the ``audit.E001`` deployment check refuses a role that could.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.db import connection, connections

from audit.models import AuditEvent

_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")


def grant_statements(role: str) -> list[str]:
    """The SQL (PostgreSQL) that gives ``role`` what the portal needs, and no more."""
    if not _ROLE_NAME.match(role):
        raise ValueError(f"Not a role name: {role!r}")
    quote = connection.ops.quote_name
    audit_table = AuditEvent._meta.db_table
    tables = sorted(connection.introspection.django_table_names(only_existing=True))
    who = quote(role)
    statements = [
        f"GRANT CONNECT ON DATABASE {quote(connection.settings_dict['NAME'])} TO {who}",
        f"GRANT USAGE ON SCHEMA public TO {who}",
        f"REVOKE ALL ON django_migrations FROM {who}",
        f"GRANT SELECT ON django_migrations TO {who}",
    ]
    for table in tables:
        statements.append(f"REVOKE ALL ON {quote(table)} FROM {who}")
        rights = "SELECT, INSERT" if table == audit_table else "SELECT, INSERT, UPDATE, DELETE"
        statements.append(f"GRANT {rights} ON {quote(table)} TO {who}")
    statements.append(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {who}")
    return statements


def grant_portal_role(role: str) -> list[str]:
    """Run ``grant_statements(role)`` (as the tables' owner); the statements run."""
    statements = grant_statements(role)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)
    return statements


def audit_table_powers(cursor: Any) -> list[str]:
    """What the role of ``cursor``'s connection could do to rewrite the audit trail."""
    cursor.execute(
        """
        SELECT r.rolsuper, pg_has_role(current_user, c.relowner, 'USAGE'),
               has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'),
               has_table_privilege(c.oid, 'TRUNCATE'), has_table_privilege(c.oid, 'TRIGGER')
        FROM pg_class c JOIN pg_roles r ON r.rolname = current_user
        WHERE c.oid = to_regclass(%s)
        """,
        [AuditEvent._meta.db_table],
    )
    row = cursor.fetchone()
    if row is None:
        return []
    names = ("is a superuser", "owns the table", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER")
    return [name for name, held in zip(names, row, strict=True) if held]


@register(Tags.database, deploy=True)
def check_portal_role(databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``check --deploy --database default``: the portal's role cannot rewrite the trail."""
    errors: list[CheckMessage] = []
    for alias in databases or ():
        if connections[alias].vendor != "postgresql":
            continue
        with connections[alias].cursor() as cursor:
            powers = audit_table_powers(cursor)
        if powers:
            errors.append(
                Error(
                    f"The database role of '{alias}' could rewrite the audit trail "
                    f"({AuditEvent._meta.db_table}: {', '.join(powers)}).",
                    hint="Run migrations as the owner role, then `manage.py grant_portal_role "
                    "<role>`, and connect the portal as that role (README, Production).",
                    id="audit.E001",
                )
            )
    return errors
