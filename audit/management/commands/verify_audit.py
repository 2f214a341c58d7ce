"""``python manage.py verify_audit [--anchor HASH]``: is the audit trail whole and unchanged?"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.verification import verify_chain


class Command(BaseCommand):
    help = (
        "Recompute the audit trail's hash chain. Exits non-zero when an event was changed or "
        "removed, or when the event of a previously reported head (--anchor) is gone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            default="",
            help="A head hash reported by an earlier run: that event must still be in the chain.",
        )

    def handle(self, *args: Any, anchor: str, **options: Any) -> None:
        report = verify_chain(anchor=anchor)
        for problem in report.problems:
            self.stderr.write(problem)
        if report.anchor_found is False:
            self.stderr.write(
                f"The anchored event {anchor} is not in the chain: events were removed."
            )
        if not report.intact:
            raise CommandError(f"The audit trail is NOT intact ({report.events} events checked).")
        self.stdout.write(
            f"The audit trail is intact: {report.events} events. "
            f"Head: {report.head} (keep it; pass it as --anchor next time)."
        )
