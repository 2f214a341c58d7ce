"""``python manage.py grant_portal_role <role>``: run as the owner after ``migrate``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from audit.dbroles import grant_portal_role, grant_statements


class Command(BaseCommand):
    help = (
        "Give the portal's PostgreSQL role what it needs and no more: DML on the application's "
        "tables, their sequences, and only SELECT and INSERT on the audit trail. Run it as the "
        "tables' owner after every migrate (new tables need their grants)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("role", help="The role the portal connects as (it must exist).")
        parser.add_argument(
            "--print",
            action="store_true",
            dest="print_only",
            help="Print the SQL instead of running it.",
        )

    def handle(self, *args: Any, role: str, print_only: bool, **options: Any) -> None:
        if connection.vendor != "postgresql":
            raise CommandError("grant_portal_role is for PostgreSQL (production) only.")
        try:
            statements = grant_statements(role) if print_only else grant_portal_role(role)
        except ValueError as error:
            raise CommandError(str(error)) from error
        if print_only:
            self.stdout.write(";\n".join(statements) + ";")
        else:
            self.stdout.write(f"Granted {role} the portal's rights ({len(statements)} statements).")
