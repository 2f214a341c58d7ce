"""Trigram indexes for the people search (issue 16).

The admin's search (``icontains``) reads ``UPPER(column) LIKE '%…%'``: no b-tree serves it, so it
scanned the four searched columns of every person. A GIN index of ``UPPER(column)`` with
``gin_trgm_ops`` (what ``GinIndex(OpClass(Upper(column), name="gin_trgm_ops"))`` means) does. PostgreSQL only (SQLite migrates past this): the ``pg_trgm`` extension is
created when the migrating role may (``CREATE EXTENSION`` needs rights); without it the indexes
are left out and the search still works, by a scan. Not in ``Person.Meta``: a GIN index cannot
be created on SQLite, which rebuilds tables with their Meta indexes.
"""

import logging

from django.contrib.postgres.operations import TrigramExtension
from django.db import DatabaseError, migrations, transaction

logger = logging.getLogger(__name__)

SEARCHED = ("legal_name", "display_name", "email", "phone")


def index_name(column: str) -> str:
    return f"person_{column}_trgm"


class TrigramExtensionWhenPossible(TrigramExtension):
    """``CREATE EXTENSION pg_trgm`` on PostgreSQL when the role may; a warning otherwise."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):  # type: ignore[no-untyped-def]
        if schema_editor.connection.vendor != "postgresql":
            return
        try:
            with transaction.atomic(using=schema_editor.connection.alias):
                super().database_forwards(app_label, schema_editor, from_state, to_state)
        except DatabaseError as exc:
            logger.warning("pg_trgm not created (%s): the people search will scan", exc)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):  # type: ignore[no-untyped-def]
        pass  # other objects may use the extension: it stays


def add_indexes(apps, schema_editor):  # type: ignore[no-untyped-def]
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            return
    quote = schema_editor.quote_name
    table = quote(apps.get_model("consent", "Person")._meta.db_table)
    for column in SEARCHED:
        # Written out: GinIndex(OpClass(Upper(...))) puts the operator class inside parentheses.
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {quote(index_name(column))} ON {table} "
            f"USING gin (UPPER({quote(column)}) gin_trgm_ops)"
        )


def remove_indexes(apps, schema_editor):  # type: ignore[no-untyped-def]
    if schema_editor.connection.vendor != "postgresql":
        return
    for column in SEARCHED:
        schema_editor.execute(f"DROP INDEX IF EXISTS {schema_editor.quote_name(index_name(column))}")


class Migration(migrations.Migration):
    dependencies = [("consent", "0012_person_and_consent_order_indexes")]

    operations = [
        TrigramExtensionWhenPossible(),
        migrations.RunPython(add_indexes, remove_indexes),
    ]
