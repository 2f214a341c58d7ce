"""The test database on PostgreSQL, made cheaper to write to and to empty.

Nothing here changes what a test sees: the rows, constraints and triggers are the same. Only two
costs go: waiting for each commit to reach the disk, and TRUNCATE after each transactional test.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.backends.postgresql.operations import DatabaseOperations

# Rows that post_migrate writes from the models, and writes again at once when they are missing:
# the flush after a transactional test keeps them rather than delete and insert them again.
# (No test adds a content type or a permission of its own.)
KEPT_BY_FLUSH = frozenset({"django_content_type", "auth_permission"})


def commit_without_waiting_for_the_disk() -> None:
    """Every connection to the test database commits without waiting for its WAL to be flushed.

    A crash could lose the last commits of a test database, which is made again for each run;
    meanwhile a commit costs no fsync (migrations, transactional tests, the live server).
    """
    for alias in connections:
        settings_dict = connections[alias].settings_dict
        if settings_dict["ENGINE"] != "django.db.backends.postgresql":
            continue
        options = settings_dict.setdefault("OPTIONS", {})
        options["options"] = f"{options.get('options', '')} -c synchronous_commit=off".strip()


def flush_by_delete() -> None:
    """Empty the tables after a transactional test with DELETE instead of TRUNCATE.

    Django's flush truncates every table; on PostgreSQL that makes new files for each table,
    index and sequence, half a second or more a test. A DELETE of the few rows a test wrote takes
    milliseconds. Replication role "replica" keeps the triggers (foreign keys, append-only audit
    events, approved consent records) from firing during it, as TRUNCATE does; only a superuser
    may take that role, so for anyone else the flush stays TRUNCATE. Sequences are reset, when a
    test asks for it, by the original code.
    """
    truncate = DatabaseOperations.sql_flush

    def sql_flush(
        self: DatabaseOperations,
        style: Any,
        tables: list[str],
        *,
        reset_sequences: bool = False,
        allow_cascade: bool = False,
    ) -> list[str]:
        if reset_sequences or not tables or not _is_superuser(self.connection):
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        # execute_sql_flush runs these in one transaction: SET LOCAL ends with it.
        emptied = [table for table in tables if table not in KEPT_BY_FLUSH]
        return [
            "SET LOCAL session_replication_role = replica",
            *(f"DELETE FROM {self.quote_name(table)}" for table in emptied),  # noqa: S608
        ]

    DatabaseOperations.sql_flush = sql_flush  # type: ignore[method-assign]


def _is_superuser(connection: Any) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        row = cursor.fetchone()
    return bool(row and row[0])
