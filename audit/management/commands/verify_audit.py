"""``python manage.py verify_audit [--full] [--anchor HASH]``: is the audit trail whole and
unchanged? Checks the keyed chain against the chain key and every anchor in AUDIT_ANCHOR_PATH,
then appends a verified anchor there for the head it reached: the next run starts from it."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from audit.anchors import Anchor, append_anchor, read_anchors
from audit.verification import verify_chain


class Command(BaseCommand):
    help = (
        "Check the audit trail's keyed hash chain and its anchors (AUDIT_ANCHOR_PATH), from the "
        "newest anchor a previous check verified (--full: from the first event). Exits non-zero "
        "and names the event when one was changed, inserted, removed or hashed with an unknown "
        "key, or when the event of a previously reported head (--anchor) is gone."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            default="",
            help="A head hash reported by an earlier run: that event must still be in the chain.",
        )
        parser.add_argument(
            "--full", action="store_true", help="Walk the whole chain, not only past the anchor."
        )

    def handle(self, *args: Any, anchor: str, full: bool, **options: Any) -> None:
        began = time.monotonic()
        anchors, unreadable = read_anchors()
        report = verify_chain(anchor=anchor, anchors=anchors, full=full)
        seconds = time.monotonic() - began
        for line in unreadable:
            self.stderr.write(line)
        for problem in report.problems:
            self.stderr.write(str(problem))
        if report.more_problems:
            self.stderr.write(f"... and {report.more_problems} more problems.")
        if report.anchor_found is False:
            self.stderr.write(
                f"The anchored event {anchor} is not in the chain: events were removed."
            )
        start = report.started_after
        walked = (
            f"{report.events} events after the anchor of {start.at} (event #{start.last_id})"
            if start
            else f"{report.events} events"
        )
        summary = (
            f"{walked} checked in {seconds:.1f} s, {report.anchors_checked} of {len(anchors)} "
            f"anchors in {settings.AUDIT_ANCHOR_PATH}"
        )
        if not report.intact or unreadable:
            raise CommandError(f"The audit trail is NOT intact ({summary}).")
        if report.head_id is not None:
            append_anchor(
                Anchor(
                    last_id=report.head_id,
                    hash=report.head,
                    key_id=report.head_key_id,
                    count=report.total,
                    at=timezone.now().isoformat(),
                    verified=True,
                )
            )
        self.stdout.write(
            f"The audit trail is intact: {summary}. Head: {report.head} "
            "(recorded there as verified; the next check starts from it)."
        )
