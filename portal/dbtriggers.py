"""Migrations that install database triggers, written once per database vendor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import migrations

Statements = dict[str, str | Sequence[str]]


def run_sql_by_vendor(forward: Statements, backward: Statements) -> migrations.RunPython:
    """A migration operation running ``forward[vendor]`` (and ``backward[vendor]`` to undo).

    Vendors with no entry run nothing. Statements are executed without parameters, so ``%`` in
    PL/pgSQL needs no escaping.
    """

    def runner(statements_by_vendor: Statements) -> Any:
        def run(apps: Any, schema_editor: Any) -> None:
            statements = statements_by_vendor.get(schema_editor.connection.vendor, [])
            for statement in [statements] if isinstance(statements, str) else statements:
                schema_editor.execute(statement, params=None)

        return run

    return migrations.RunPython(runner(forward), runner(backward))
