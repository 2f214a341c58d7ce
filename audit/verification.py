"""Checking the audit trail's hash chain."""

from __future__ import annotations

from dataclasses import dataclass

from audit.models import GENESIS_HASH, AuditEvent


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain from the first event to the last."""

    events: int
    head: str
    problems: list[str]
    anchor_found: bool | None = None

    @property
    def intact(self) -> bool:
        return not self.problems and self.anchor_found is not False


def verify_chain(*, anchor: str = "") -> ChainReport:
    """Recompute every event's hash in order and check that each links to the one before.

    A changed event no longer matches its hash; a removed one breaks its successor's link. The
    removal of the newest events leaves a shorter, valid chain: legal keeps the reported ``head``
    (an anchor) and passes it next time, and the check fails when that event is gone.
    """
    problems: list[str] = []
    expected_previous = GENESIS_HASH
    count = 0
    anchor_found = False if anchor else None
    for event in AuditEvent.objects.order_by("pk").iterator(chunk_size=2000):
        count += 1
        if event.previous_hash != expected_previous:
            problems.append(
                f"Event #{event.pk} does not follow the event before it: "
                "an event was removed or reordered before it."
            )
        if event.compute_hash() != event.hash:
            problems.append(f"Event #{event.pk} ({event.action}) was changed after it was written.")
        if anchor and event.hash == anchor:
            anchor_found = True
        expected_previous = event.hash
    return ChainReport(
        events=count, head=expected_previous, problems=problems, anchor_found=anchor_found
    )
