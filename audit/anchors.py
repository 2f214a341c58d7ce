"""Anchors: the audit chain's head, written outside the database.

The keyed hash stops anyone without the key from changing or inserting events, but removing the
newest ones leaves a shorter chain that still verifies. An anchor (the last event's id and
hash, the key id, how many events there were, and when) kept where the database's users cannot
write reveals that: beat appends one to ``AUDIT_ANCHOR_PATH`` (a JSON-lines file opened
``O_APPEND``) at least daily and mails it to ``AUDIT_ANCHOR_EMAIL``; ``verify_audit`` checks
the chain against every anchor in the file, and appends a ``verified`` one for the head it
checked, where its next run starts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import lock_chain


@dataclass(frozen=True)
class Anchor:
    """The chain's head at ``at``: event ``last_id`` had ``hash`` and was the ``count``-th."""

    last_id: int
    hash: str
    key_id: str
    count: int
    at: str
    # Set once, by the migration that keyed the chain: the unkeyed SHA-256 head it replaced.
    legacy_hash: str = ""
    # Written by verify_audit: every event up to this one was checked under the key. The next
    # check (without --full) starts here.
    verified: bool = False

    def line(self) -> str:
        return json.dumps(
            {k: v for k, v in asdict(self).items() if v not in ("", False)}, sort_keys=True
        )


def chain_head() -> Anchor | None:
    """The chain's head now (``None`` while it is empty), read while no event is appended."""
    with transaction.atomic():
        lock_chain()
        head = AuditEvent.objects.order_by("-pk").values_list("pk", "hash", "key_id").first()
        if head is None:
            return None
        count = AuditEvent.objects.filter(pk__lte=head[0]).count()
    return Anchor(
        last_id=head[0], hash=head[1], key_id=head[2], count=count, at=timezone.now().isoformat()
    )


def append_anchor(anchor: Anchor, path: Path | None = None) -> None:
    """Add ``anchor`` to the anchor file: appended, never rewritten, on disk before returning."""
    path = Path(settings.AUDIT_ANCHOR_PATH) if path is None else path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (anchor.line() + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_anchors(path: Path | None = None) -> tuple[list[Anchor], list[str]]:
    """The anchors in the file (none when it does not exist), and its unreadable lines."""
    path = Path(settings.AUDIT_ANCHOR_PATH) if path is None else path
    anchors: list[Anchor] = []
    unreadable: list[str] = []
    if not path.exists():
        return anchors, unreadable
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                anchors.append(Anchor(**json.loads(line)))
            except (ValueError, TypeError):
                unreadable.append(f"{path}:{number} is not an anchor: {line.strip()[:80]}")
    return anchors, unreadable


def write_anchor() -> Anchor | None:
    """Append the chain's head to the anchor file and mail it to ``AUDIT_ANCHOR_EMAIL``."""
    anchor = chain_head()
    if anchor is None:
        return None
    append_anchor(anchor)
    if settings.AUDIT_ANCHOR_EMAIL:
        send_mail(
            subject=f"Audit trail anchor: event #{anchor.last_id}, {anchor.count} events",
            message=(
                "The portal's audit trail had this head. Keep this message: "
                "`manage.py verify_audit --anchor <hash>` checks that the event is still there, "
                "unchanged.\n\n" + anchor.line() + "\n"
            ),
            from_email=None,
            recipient_list=list(settings.AUDIT_ANCHOR_EMAIL),
        )
    return anchor
