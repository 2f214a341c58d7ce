"""``python manage.py apply_retention [--dry-run]``: destroy the biometric media retention allows.

Every asset whose consent has ended and whose files are still stored is listed with its verdict:
destroyed (its consent ended more than ``BIOMETRIC_RETENTION_DAYS`` ago and the upstream
confirmed its withdrawal) or kept, and why (legal hold, still within the period, withdrawal not
confirmed). ``--dry-run`` only prints that report. Beat runs the same daily
(``assets.tasks.apply_retention``); the rows and the audit trail keep what proves the consent.
"""

from __future__ import annotations

from typing import Any, TextIO, cast

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from rich.console import Console
from rich.table import Table

from assets import services


class Command(BaseCommand):
    help = (
        "Destroy the files of assets whose consent ended more than BIOMETRIC_RETENTION_DAYS "
        "ago, once their withdrawal is confirmed upstream and unless the person is under a "
        "legal hold. --dry-run reports what would be removed and why, and changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="report only: remove nothing, write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        decisions = services.retention_apply(dry_run=dry_run)
        console = Console(file=cast(TextIO, self.stdout), width=160, highlight=False)
        destroyed = [decision for decision in decisions if decision.destroy]
        verb = "Would remove" if dry_run else "Removed"
        table = Table(title=f"Retention ({settings.BIOMETRIC_RETENTION_DAYS} days after a consent "
                      "ends)" + (": dry run, nothing removed" if dry_run else ""))  # fmt: skip
        for column in ("asset", "person", "verdict", "files", "why"):
            table.add_column(column, overflow="fold")
        for decision in decisions:
            asset = decision.asset
            table.add_row(
                f"#{asset.pk} {asset.original_filename} ({asset.sha256[:12]}…)",
                f"#{asset.group.person_id} {asset.group.person}",
                verb.lower() if decision.destroy else "kept",
                "\n".join(decision.files),
                decision.reason,
            )
        if decisions:
            console.print(table)
        files = sum(len(decision.files) for decision in destroyed)
        console.print(
            f"{verb} {files} file(s) of {len(destroyed)} asset(s); kept "
            f"{len(decisions) - len(destroyed)} asset(s) whose consent ended."
        )
