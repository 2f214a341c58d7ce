"""Retention: biometric media destroyed once the purpose ended (BIPA), legal holds respected.

``retention_decisions`` says, per asset, whether its file may go and why; ``retention_apply``
(beat, daily; ``apply_retention`` with a dry run) destroys those files, with an audit event each.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from assets.models import Asset, WithdrawalItemStatus
from audit.services import audit_record
from consent.models import ConsentRecord

# --- Retention: biometric media destroyed once the purpose ended (BIPA) ----------------------

ENDED_CONSENT = (
    ConsentRecord.Status.REVOKED,
    ConsentRecord.Status.EXPIRED,
    ConsentRecord.Status.SUPERSEDED,
)


@dataclass(frozen=True)
class RetentionDecision:
    """What retention does with one asset's files, and why, in words for the report."""

    asset: Asset
    destroy: bool
    reason: str

    @property
    def files(self) -> list[str]:
        return [f.name for f in (self.asset.file, self.asset.upstream_copy) if f and f.name]


def retention_decisions(*, now: datetime.datetime | None = None) -> list[RetentionDecision]:
    """Every asset whose consent has ended and whose files are still stored, with the verdict.

    Its files (the upload and its location-stripped copy) are destroyed once the consent ended
    more than ``BIOMETRIC_RETENTION_DAYS`` ago and the upstream has confirmed their withdrawal,
    unless the person is under a legal hold. The row stays, with what proves the consent and
    its end: hash, size, measurements, upstream ids, dates, the withdrawal.
    """
    now = now or timezone.now()
    days = settings.BIOMETRIC_RETENTION_DAYS
    cutoff = now - datetime.timedelta(days=days)
    stored = (Q(file__gt="") | Q(upstream_copy__gt="")) & Q(media_destroyed_at__isnull=True)
    assets = (
        Asset.objects.filter(stored, consent__status__in=ENDED_CONSENT)
        .select_related("consent", "group__person")
        .annotate(
            confirmed_items=Count(
                "withdrawal_items",
                filter=Q(withdrawal_items__status=WithdrawalItemStatus.CONFIRMED),
            ),
            unconfirmed_items=Count(
                "withdrawal_items",
                filter=~Q(withdrawal_items__status=WithdrawalItemStatus.CONFIRMED),
            ),
        )
        .order_by("group__person_id", "pk")
    )
    decisions = []
    for asset in assets:
        consent = cast(ConsentRecord, asset.consent)
        ended = consent.ended_at or consent.revoked_at or consent.updated_at
        ended_text = (
            f"consent #{consent.pk} {consent.get_status_display().lower()} on "
            f"{timezone.localtime(ended):%Y-%m-%d}"
        )
        if asset.group.person.legal_hold:
            verdict = (False, f"{asset.group.person} is under a legal hold ({ended_text})")
        elif ended > cutoff:
            until = timezone.localtime(ended + datetime.timedelta(days=days))
            verdict = (
                False,
                f"within the {days}-day retention period ({ended_text}): removable from "
                f"{until:%Y-%m-%d}",
            )
        elif asset.unconfirmed_items or not asset.confirmed_items:  # type: ignore[attr-defined]
            verdict = (
                False,
                f"{ended_text}, but the upstream has not confirmed its withdrawal yet",
            )
        else:
            age = (now - ended).days
            verdict = (
                True,
                f"{ended_text} ({age} days ago, retention {days} days); withdrawal confirmed "
                "upstream",
            )
        decisions.append(RetentionDecision(asset, *verdict))
    return decisions


def retention_apply(
    *, dry_run: bool = False, now: datetime.datetime | None = None
) -> list[RetentionDecision]:
    """Destroy the files ``retention_decisions`` marks for it (nothing with ``dry_run``); return
    every decision, for the report.

    Each asset in its own transaction: its files are deleted from storage first, then the row
    records it (``media_destroyed_at``, files emptied) with an audit event naming the files and
    the reason. A storage failure leaves the row as it was (reported, tried again next run).
    """
    decisions = retention_decisions(now=now)
    if dry_run:
        return decisions
    for decision in decisions:
        if decision.destroy:
            _destroy_media(decision)
    return decisions


def _destroy_media(decision: RetentionDecision) -> None:
    with transaction.atomic():
        asset = Asset.objects.select_for_update().select_related("group").get(pk=decision.asset.pk)
        if asset.media_destroyed_at is not None:
            return
        names = [f.name for f in (asset.file, asset.upstream_copy) if f and f.name]
        for field_file in (asset.file, asset.upstream_copy):
            if field_file and field_file.name:
                field_file.storage.delete(field_file.name)
        now = timezone.now()
        Asset.objects.filter(pk=asset.pk).update(file="", upstream_copy="", media_destroyed_at=now)
        audit_record(
            action="asset.media_destroyed",
            obj=asset,
            actor_label="retention",
            person_id=asset.group.person_id,
            before={"files": names},
            after={"files": [], "media_destroyed_at": now},
            detail={
                "reason": decision.reason,
                "sha256": asset.sha256,
                "retention_days": settings.BIOMETRIC_RETENTION_DAYS,
            },
        )
