"""``python manage.py apply_retention [--dry-run]``: destroy the biometric media retention allows.

Every asset whose consent has ended and whose files are still stored is listed with its verdict:
destroyed (its consent ended more than ``BIOMETRIC_RETENTION_DAYS`` ago and the upstream
confirmed its withdrawal) or kept, and why (legal hold, still within the period, withdrawal not
confirmed). ``--dry-run`` only prints that report. Beat runs the same daily
(``assets.tasks.apply_retention``); the rows and the audit trail keep what proves the consent.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from assets.services import retention


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
        decisions = retention.retention_apply(dry_run=dry_run)
        days = settings.BIOMETRIC_RETENTION_DAYS
        title = f"Retention: biometric media destroyed {days} days after a consent ends"
        self.stdout.write(title + (" (dry run, nothing removed)" if dry_run else ""))
        verb = "would remove" if dry_run else "removed"
        for decision in decisions:
            asset = decision.asset
            self.stdout.write(
                f"\n{verb if decision.destroy else 'kept'}: asset #{asset.pk} "
                f"{asset.original_filename or asset.upstream_name} (SHA-256 {asset.sha256[:16]}…) "
                f"of person #{asset.group.person_id} {asset.group.person}"
            )
            if decision.destroy:
                self.stdout.write("  files: " + ", ".join(decision.files))
            self.stdout.write(f"  why: {decision.reason}")
        destroyed = [decision for decision in decisions if decision.destroy]
        files = sum(len(decision.files) for decision in destroyed)
        self.stdout.write(
            f"\n{verb.capitalize()} {files} file(s) of {len(destroyed)} asset(s); kept "
            f"{len(decisions) - len(destroyed)} asset(s) whose consent ended."
        )
