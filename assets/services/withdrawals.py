"""Withdrawals: a likeness leaves the upstream when its consent ends (or staff withdraw one asset).

``withdrawal_start`` runs in the transaction that ends the consent: queued uploads fail, and one
``WithdrawalItem`` per asset and group to delete is made. ``withdrawal_item_process`` deletes
each upstream and confirms it only when an independent read proves it (``proof``: the
DeleteAsset answer, or the group's listing no longer showing the asset; for a group, its
listing showing nothing of it after DeleteAssetGroup), recording how;
``withdrawals_sweep`` finds items whose task was lost or whose worker died. Producers who copied
the references are told (``notices``).
"""

from __future__ import annotations

import datetime
import logging
from contextlib import AbstractContextManager
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from assets.models import (
    Asset,
    AssetGroup,
    GroupStatus,
    Withdrawal,
    WithdrawalItem,
    WithdrawalItemStatus,
    WithdrawalOutcome,
    WithdrawalProof,
    WithdrawalReason,
)
from assets.services.common import CLAIM_SLACK, POLL_BATCH, WORKER, retry_delay, settle
from assets.services.notices import reference_copies_notify_withdrawn
from assets.services.proof import delete_group_proven, delete_proven
from audit.models import AuditEvent
from audit.services import audit_record
from consent.models import ConsentRecord, Person
from portal.leases import renewed_lease
from portal.queue import enqueue_after_commit
from upstream import (
    AmbiguousWrite,
    AnyfastClient,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamError,
    client_or_default,
    upstream_outcome,
)

logger = logging.getLogger(__name__)


def asset_withdraw(*, asset: Asset, client: AnyfastClient | None = None, actor: Any = None) -> None:
    """Delete the asset upstream (DeleteAsset, proven: an ambiguous or NotFound answer counts
    only once its group's listing no longer shows it), then mark it ``withdrawn``; its reference
    stops working. Refused while it is being uploaded: withdraw it once the upload has finished.
    ``actor`` asked (the worker when None)."""
    if asset.status == Asset.Status.WITHDRAWN:
        return
    busy = ValidationError(
        f"{asset} is being uploaded right now: withdraw it again once the upload has finished."
    )
    if asset.status == Asset.Status.UPLOADING:
        raise busy
    with client_or_default(client) as upstream:
        upstream_id = asset.upstream_id
        if upstream_id is None and asset.attempts:
            # An attempt whose answer was lost may have created it all the same.
            group = asset.group
            found = upstream.find_asset_by_name(
                group.group_id, asset.upstream_name, group_type=group.group_type
            )
            upstream_id = found.id if found else None
        outcome = {"upstream": "nothing to delete: never created upstream"}
        if upstream_id:
            outcome = delete_upstream_audited(upstream, upstream_id, asset=asset, actor=actor)
    withdrawn = settle(
        Asset.objects.filter(pk=asset.pk).exclude(
            status__in=[Asset.Status.UPLOADING, Asset.Status.WITHDRAWN]
        ),
        asset,
        "withdrawn",
        {"status": Asset.Status.WITHDRAWN, "withdrawn_at": timezone.now(), "next_attempt_at": None},
        detail={"upstream_id": upstream_id, **outcome},
        actor=actor,
    )
    if (
        not withdrawn
        and not Asset.objects.filter(pk=asset.pk, status=Asset.Status.WITHDRAWN).exists()
    ):
        raise busy


def delete_upstream_audited(
    upstream: AnyfastClient, upstream_id: str, *, asset: Asset, actor: Any = None
) -> dict[str, str]:
    """DeleteAsset, proven (``proof.delete_proven``: an ambiguous or NotFound answer is settled by
    listing the group), and its outcome for the audit trail; a failure is recorded
    (``asset.upstream_error``) and raised (``StillListed`` while the listing shows it)."""
    group = asset.group
    try:
        outcome, proven_by = delete_proven(
            upstream, upstream_id, group=group, sent_before=_delete_sent_before(asset)
        )
    except UpstreamError as error:
        audit_record(
            action="asset.upstream_error",
            obj=asset,
            actor=actor,
            actor_label="" if actor is not None else WORKER,
            person_id=group.person_id,
            detail={"upstream_id": upstream_id, **upstream_outcome("DeleteAsset", error)},
        )
        raise
    proof = {"outcome": outcome, "proven_by": proven_by}
    if outcome == WithdrawalOutcome.ALREADY_GONE:
        return {"upstream": "DeleteAsset: not found, and not listed: deleted already", **proof}
    if proven_by == WithdrawalProof.LISTING:
        return {"upstream": "DeleteAsset: no clear answer; its group no longer lists it", **proof}
    return {**upstream_outcome("DeleteAsset"), **proof}


def _delete_sent_before(asset: Asset) -> bool:
    """Whether a DeleteAsset of the portal for ``asset`` was sent before (its answer was lost):
    a NotFound now is that call's deletion, not one made by someone else."""
    return (
        WithdrawalItem.objects.filter(asset=asset, delete_sent_at__isnull=False).exists()
        or AuditEvent.objects.for_object(asset)
        .filter(action="asset.upstream_error", detail__upstream__startswith="DeleteAsset failed")
        .exists()
    )


# --- Withdrawal: a consent ended, its likeness leaves the upstream -----------------------------
#
# ``consent.services`` calls ``withdrawal_start`` in the transaction that revokes, expires or
# supersedes a consent. From that moment the consent is not in force, so its assets have left
# ``Asset.objects.usable_by_producers()`` and the upload gate (checked again just before every
# CreateAsset) sends nothing more of them. What is already upstream is deleted item by item
# (``withdrawal_item_process``, one task per item) until the upstream confirms each, whatever
# 429s, 5xx, timeouts or worker restarts happen on the way (``withdrawals_sweep``).

# A pending item waiting for something (an upload in progress, a lost create that may still
# land) looks again this often.
_WITHDRAWAL_RECHECK = datetime.timedelta(seconds=15)
UPLOAD_IN_PROGRESS_EXPLANATION = (
    "A worker was uploading this asset when the consent ended (its CreateAsset left before). "
    "The withdrawal waits for that upload's answer, then deletes whatever it made."
)
CREATE_MAY_SETTLE_EXPLANATION = (
    "An earlier upload attempt of this asset lost its answer, so the upstream may still be "
    "creating it: its Name is looked up again until {until}, and deleted if it appears."
)
CONSENT_ENDED_EXPLANATION = (
    "Its consent ended (revoked, expired or superseded) before the upload left: it is never "
    "sent, and the consent's withdrawal deletes anything an earlier attempt made upstream."
)
KEY_MISMATCH_EXPLANATION = (
    "The portal's API key (fingerprint {current}) is not the key that owns this person's group "
    "(fingerprint {owner}): the upstream hides another key's assets, so its NotFound would prove "
    "nothing. Configure the key that verified the person (ANYFAST_API_KEY), then retry."
)


def assets_reassign_consent(*, from_consent_id: int, to_consent_id: int, actor: Any) -> list[int]:
    """Move to a new consent version the assets of the one it supersedes that it also covers.

    Runs in the caller's transaction (the approval of ``to_consent_id``). Assets of kinds the new
    version does not cover stay with the old one, and are withdrawn with it. Withdrawn assets
    stay where they were: they are history. Returns the ids of the assets moved.
    """
    new = ConsentRecord.objects.get(pk=to_consent_id)
    moved = list(
        Asset.objects.filter(consent_id=from_consent_id, kind__in=new.media_types())
        .exclude(status=Asset.Status.WITHDRAWN)
        .select_related("group")
    )
    Asset.objects.filter(pk__in=[asset.pk for asset in moved]).update(consent_id=to_consent_id)
    for asset in moved:
        audit_record(
            action="asset.consent_reassigned",
            obj=asset,
            actor=actor,
            person_id=asset.group.person_id,
            before={"consent_id": from_consent_id},
            after={"consent_id": to_consent_id},
            detail={"why": "a new version of the consent, covering its kind, superseded it"},
        )
    return [asset.pk for asset in moved]


@transaction.atomic
def withdrawal_start(
    *, consent_id: int, reason: str, requested_by: Any, requested_by_label: str = ""
) -> Withdrawal | None:
    """Record that an ended consent's likeness must leave the upstream, and start that.

    Called in the transaction that ends the consent: the ``Withdrawal`` and its items exist
    exactly when the end does. Items: every asset of the consent (whatever its state: one never
    uploaded is confirmed as such, an upload in progress is waited for) and, when the person's
    asset groups are deleted too, the group (after its assets) and anything else left in it.

    Groups: deleted when no other consent of the person is approved and not yet ended (in force,
    or starting later); such a consent needs the person's verified group for its assets and its
    future uploads, so the group is then kept, and deleted by the withdrawal of the last consent
    to end. A group chosen for deletion takes no new upload from now on.

    Idempotent per consent (its one withdrawal is returned). A supersession that leaves nothing
    to withdraw records none. The item tasks and the producers' notice leave on commit.
    """
    existing = Withdrawal.objects.filter(consent_id=consent_id).first()
    if existing is not None:
        return existing
    consent = ConsentRecord.objects.get(pk=consent_id)
    # One person's withdrawals decide about the same groups: one at a time.
    Person.objects.select_for_update().filter(pk=consent.person_id).first()
    groups, decision = _groups_to_delete(consent)
    assets = list(Asset.objects.filter(consent_id=consent_id).order_by("pk"))
    # What else a deleted group holds goes with it: list it too (rows of no consent, or of a
    # consent that ended before withdrawals existed), unless another withdrawal has it already.
    already_listed = WithdrawalItem.objects.unconfirmed().filter(asset=OuterRef("pk"))
    assets += (
        Asset.objects.filter(group__in=groups)
        .exclude(consent_id=consent_id)
        .exclude(status=Asset.Status.WITHDRAWN)
        .exclude(Exists(already_listed))
        .order_by("pk")
    )
    if reason == WithdrawalReason.SUPERSEDED and not assets and not groups:
        return None
    user = requested_by if requested_by is not None and requested_by.is_authenticated else None
    label = requested_by_label or (user.get_username() if user is not None else "system")
    withdrawal = Withdrawal.objects.create(
        consent=consent,
        person_id=consent.person_id,
        reason=reason,
        requested_by=user,
        requested_by_label=label[:150],
        groups_decision=decision,
    )
    now = timezone.now()
    items = WithdrawalItem.objects.bulk_create(
        [
            WithdrawalItem(
                withdrawal=withdrawal,
                asset=asset,
                group_id=asset.group_id,
                upstream_id=asset.upstream_id or "",
                next_attempt_at=now,
            )
            for asset in assets
        ]
        + [
            WithdrawalItem(
                withdrawal=withdrawal, group=group, upstream_id=group.group_id, next_attempt_at=now
            )
            for group in groups
        ]
    )
    AssetGroup.objects.filter(pk__in=[group.pk for group in groups]).update(
        status=GroupStatus.WITHDRAWN
    )
    # Uploads still queued never start: their claim (a conditional UPDATE on ``queued``) can no
    # longer match, so ``attempts`` keeps saying whether a create was ever sent.
    Asset.objects.filter(pk__in=[asset.pk for asset in assets], status=Asset.Status.QUEUED).update(
        status=Asset.Status.FAILED,
        next_attempt_at=None,
        error_code="ConsentEnded",
        error_message="Its consent ended before it was uploaded.",
        error_explanation=CONSENT_ENDED_EXPLANATION,
    )
    audit_record(
        action="withdrawal.started",
        obj=withdrawal,
        actor=requested_by,
        actor_label=requested_by_label,
        person_id=consent.person_id,
        detail={
            "consent_id": consent_id,
            "reason": reason,
            "asset_ids": [asset.pk for asset in assets],
            "groups_deleted": [group.group_id for group in groups],
            "groups_decision": decision,
        },
    )
    if not items:  # nothing ever reached the upstream: nothing to wait for
        withdrawal.confirmed_at = now
        withdrawal.save(update_fields=["confirmed_at"])
        audit_record(
            action="withdrawal.confirmed",
            obj=withdrawal,
            actor_label="withdrawal",
            person_id=consent.person_id,
            detail={"confirmed_at": now, "items": 0},
        )
    # A group's item waits for its assets' items: the last of those to settle sends it.
    waited_for = {asset.group_id for asset in assets}
    for item in items:
        if not item.is_group or item.group_id not in waited_for:
            _enqueue_withdraw_item(item.pk)
    _enqueue_notify_producers(withdrawal.pk)
    return withdrawal


def _groups_to_delete(consent: ConsentRecord) -> tuple[list[AssetGroup], str]:
    """The person's active groups to delete with this consent's withdrawal, and why (or why not)."""
    groups = list(AssetGroup.objects.filter(person_id=consent.person_id, status=GroupStatus.ACTIVE))
    if not groups:
        return [], "None to delete: the person has no active asset group."
    others = list(
        ConsentRecord.objects.filter(
            person_id=consent.person_id, status=ConsentRecord.Status.APPROVED
        )
        .exclude(pk=consent.pk)
        .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=timezone.localdate()))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    names = ", ".join(group.group_id for group in groups)
    if others:
        numbers = ", ".join(f"#{pk}" for pk in others)
        return [], (
            f"Kept ({names}): consent record {numbers} of the person is approved and has not "
            "ended; its assets and uploads need the person's verified group. The withdrawal of "
            "the last consent to end deletes it."
        )
    return groups, (
        f"Deleted ({names}): no other consent of the person is approved and not ended, so "
        "nothing else needs the group; DeleteAssetGroup follows the DeleteAsset of each asset "
        "in it, and removes anything left there."
    )


def _enqueue_withdraw_item(item_id: int, *, countdown: float | None = None) -> None:
    """Send the item's task once the current transaction commits (``withdrawals_sweep`` sends
    it again if the broker refuses it)."""
    enqueue_after_commit("assets.tasks.withdraw_item", item_id, countdown=countdown)


def _enqueue_notify_producers(withdrawal_id: int) -> None:
    """Send the producers' notice task on commit (``withdrawals_sweep`` resends)."""
    enqueue_after_commit("assets.tasks.notify_producers_of_withdrawal", withdrawal_id)


def withdrawal_item_process(*, item_id: int, client: AnyfastClient | None = None) -> None:
    """Work one withdrawal item: delete its asset (or group) upstream and record the proof.

    Does nothing unless the item is pending and due (a group's item: and its assets' items of the
    same withdrawal have settled). An asset is confirmed when DeleteAsset answers OK or, after an
    ambiguous or NotFound answer, once ListAssets of the group no longer lists it; a group once
    ListAssets shows nothing of it after DeleteAssetGroup (``StillListed`` otherwise: tried
    again). A transient error sets the next attempt (exponential backoff with jitter, for ever);
    an error no retry can fix fails the item, for staff to retry.
    """
    item = _claim_item(item_id)
    if item is None:
        logger.info("withdrawal item %s: not pending, due or ready; nothing to do", item_id)
        return
    try:
        with client_or_default(client) as upstream, _item_lease_renewed(item):
            if item.is_group:
                _withdraw_group(item, upstream)
            else:
                _withdraw_asset(item, upstream)
    except (TransientUpstreamError, AmbiguousWrite) as error:
        delay = retry_delay(item.attempts, error)
        _item_later(
            item,
            delay=delay,
            code=error.code or type(error).__name__,
            message=error.message,
            explanation=error.explanation,
            error=True,
        )
    except PermanentUpstreamError as error:
        _item_fail(
            item,
            code=error.code or type(error).__name__,
            message=str(error),
            explanation=error.explanation,
        )


def _claim_item(item_id: int) -> WithdrawalItem | None:
    """Take a due, ready, pending item for this worker: one more attempt, under a lease.

    ``attempts`` after the claim is the claim's token: only this claim's writes match it. A
    worker that dies leaves the item pending; once the lease has run out it is due again.
    """
    now = timezone.now()
    lease = datetime.timedelta(seconds=settings.WITHDRAWAL_ITEM_LEASE_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + CLAIM_SLACK)
    claimed = (
        WithdrawalItem.objects.ready()
        .filter(due, pk=item_id, status=WithdrawalItemStatus.PENDING)
        .update(attempts=F("attempts") + 1, next_attempt_at=now + lease)
    )
    if not claimed:
        return None
    return WithdrawalItem.objects.select_related("withdrawal", "group").get(pk=item_id)


def _item_lease_renewed(item: WithdrawalItem) -> AbstractContextManager[None]:
    """The claim's lease, renewed while this worker works the item (a dead one's lapses)."""
    return renewed_lease(
        _claimed_item(item),
        lease_end=cast(datetime.datetime, item.next_attempt_at),
        lease_seconds=settings.WITHDRAWAL_ITEM_LEASE_SECONDS,
        max_seconds=settings.CELERY_TASK_TIME_LIMIT,
    )


def _claimed_item(item: WithdrawalItem) -> QuerySet[WithdrawalItem]:
    """The item, as long as this worker's claim still holds it."""
    return WithdrawalItem.objects.filter(
        pk=item.pk, status=WithdrawalItemStatus.PENDING, attempts=item.attempts
    )


def _key_mismatch(group: AssetGroup, upstream: AnyfastClient) -> str:
    """Why this client cannot prove anything about ``group`` upstream ("" when it can)."""
    owner = group.api_key_fingerprint
    if owner and owner != upstream.key_fingerprint:
        return KEY_MISMATCH_EXPLANATION.format(current=upstream.key_fingerprint, owner=owner)
    return ""


def _withdraw_asset(item: WithdrawalItem, upstream: AnyfastClient) -> None:
    asset = Asset.objects.select_related("group").get(pk=cast(int, item.asset_id))
    now = timezone.now()
    if asset.status == Asset.Status.UPLOADING:
        lease_end = asset.next_attempt_at or now
        _item_later(
            item,
            delay=max(min(lease_end - now, _WITHDRAWAL_RECHECK), CLAIM_SLACK).total_seconds(),
            code="UploadInProgress",
            message="An upload of this asset is in progress.",
            explanation=UPLOAD_IN_PROGRESS_EXPLANATION,
        )
        return
    upstream_id = asset.upstream_id
    if (upstream_id or asset.attempts) and (mismatch := _key_mismatch(asset.group, upstream)):
        _item_fail(item, code="KeyMismatch", message=mismatch, explanation=mismatch)
        return
    if not upstream_id and asset.attempts:
        # An attempt whose answer was lost may have created it all the same: its Name says.
        group = asset.group
        found = upstream.find_asset_by_name(
            group.group_id, asset.upstream_name, group_type=group.group_type
        )
        upstream_id = found.id if found else None
    proven_by = ""
    if upstream_id:
        # The key owns the group (checked above), so a listing not showing it proves it gone.
        sent_before = item.delete_sent_at is not None or _delete_sent_before(asset)
        _mark_delete_sent(item)
        outcome, proven_by = delete_proven(
            upstream, upstream_id, group=asset.group, sent_before=sent_before
        )
    elif asset.attempts:
        settle_after = item.settle_after or now + datetime.timedelta(
            seconds=settings.WITHDRAWAL_CREATE_SETTLE_SECONDS
        )
        if now < settle_after:
            until = timezone.localtime(settle_after).strftime("%Y-%m-%d %H:%M:%S")
            _item_later(
                item,
                delay=min(settle_after - now, _WITHDRAWAL_RECHECK).total_seconds(),
                code="CreateMaySettle",
                message="Not found by its Name yet.",
                explanation=CREATE_MAY_SETTLE_EXPLANATION.format(until=until),
                settle_after=settle_after,
            )
            return
        outcome, proven_by = WithdrawalOutcome.NOT_FOUND_BY_NAME, WithdrawalProof.LISTING
    else:
        outcome = WithdrawalOutcome.NEVER_UPLOADED
    _confirm_asset_item(item, outcome=outcome, upstream_id=upstream_id or "", proven_by=proven_by)


def _mark_delete_sent(item: WithdrawalItem) -> None:
    """Record, before it leaves, that the portal's first delete for ``item`` is being sent: a
    NotFound after a lost answer is then recorded as this deletion, never as 'already gone'."""
    now = timezone.now()
    _claimed_item(item).filter(delete_sent_at__isnull=True).update(delete_sent_at=now)


def _confirm_asset_item(
    item: WithdrawalItem, *, outcome: str, upstream_id: str, proven_by: str
) -> None:
    """Record the upstream's confirmation, how it was proven (``proven_by``: the DeleteAsset
    answer, or a listing of the group that no longer shows it), and the asset as withdrawn, in
    one transaction."""
    now = timezone.now()
    with transaction.atomic():
        # Locked: no claim of the upload pipeline can start on it before this commits.
        asset = Asset.objects.select_for_update().get(pk=cast(int, item.asset_id))
        if asset.status == Asset.Status.UPLOADING:
            # Claimed after the check above (possible only for a row whose gate is still open):
            # look again once that upload has answered.
            _item_later(item, delay=_WITHDRAWAL_RECHECK.total_seconds(), code="UploadInProgress",
                        message="An upload of this asset started.",
                        explanation=UPLOAD_IN_PROGRESS_EXPLANATION)  # fmt: skip
            return
        if not _claimed_item(item).update(
            status=WithdrawalItemStatus.CONFIRMED,
            outcome=outcome,
            proven_by=proven_by,
            confirmed_at=now,
            upstream_id=upstream_id,
            next_attempt_at=None,
            last_error_code="",
            last_error="",
            last_error_explanation="",
            updated_at=now,
        ):
            return  # the claim was lost (lease ran out): the other worker records it
        before = {"status": asset.status, "upstream_id": asset.upstream_id}
        if asset.status != Asset.Status.WITHDRAWN:
            Asset.objects.filter(pk=asset.pk).update(
                status=Asset.Status.WITHDRAWN, withdrawn_at=now, next_attempt_at=None
            )
        audit_record(
            action="asset.withdrawn_upstream",
            obj=asset,
            actor_label="withdrawal",
            person_id=item.withdrawal.person_id,
            before=before,
            after={"status": Asset.Status.WITHDRAWN},
            detail={
                "withdrawal_id": item.withdrawal_id,
                "item_id": item.pk,
                "upstream_id": upstream_id,
                "outcome": outcome,
                "proven_by": proven_by,
                "confirmed_at": now,
                "attempts": item.attempts,
            },
        )
        _after_item_settled(item)


def _withdraw_group(item: WithdrawalItem, upstream: AnyfastClient) -> None:
    group = item.group
    if mismatch := _key_mismatch(group, upstream):
        _item_fail(item, code="KeyMismatch", message=mismatch, explanation=mismatch)
        return
    sent_before = item.delete_sent_at is not None
    _mark_delete_sent(item)
    # Raises StillListed while the group's listing shows assets, Unproven when an ambiguous
    # answer meets an empty listing: the item is tried again later.
    outcome, proven_by, listing = delete_group_proven(upstream, group, sent_before=sent_before)
    now = timezone.now()
    with transaction.atomic():
        if not _claimed_item(item).update(
            status=WithdrawalItemStatus.CONFIRMED,
            outcome=outcome,
            proven_by=proven_by,
            confirmed_at=now,
            next_attempt_at=None,
            last_error_code="",
            last_error="",
            last_error_explanation="",
            updated_at=now,
        ):
            return
        AssetGroup.objects.filter(pk=group.pk).update(
            status=GroupStatus.WITHDRAWN, withdrawn_at=now
        )
        # Whatever was left in it went with it: assets whose own deletion failed, and rows no
        # withdrawal listed.
        swept = list(
            Asset.objects.filter(group=group)
            .exclude(status__in=[Asset.Status.WITHDRAWN, Asset.Status.UPLOADING])
            .values_list("pk", flat=True)
        )
        Asset.objects.filter(pk__in=swept).update(
            status=Asset.Status.WITHDRAWN, withdrawn_at=now, next_attempt_at=None
        )
        WithdrawalItem.objects.filter(
            withdrawal=item.withdrawal, group=group, asset__isnull=False
        ).exclude(status=WithdrawalItemStatus.CONFIRMED).update(
            status=WithdrawalItemStatus.CONFIRMED,
            outcome=WithdrawalOutcome.DELETED_WITH_GROUP,
            proven_by=proven_by,
            confirmed_at=now,
            next_attempt_at=None,
            updated_at=now,
        )
        audit_record(
            action="asset_group.deleted_upstream",
            obj=group,
            actor_label="withdrawal",
            person_id=item.withdrawal.person_id,
            detail={
                "withdrawal_id": item.withdrawal_id,
                "item_id": item.pk,
                "group_id": group.group_id,
                "outcome": outcome,
                "proven_by": proven_by,
                "listing": listing,
                "confirmed_at": now,
                "attempts": item.attempts,
                "assets_withdrawn_with_it": swept,
            },
        )
        _after_item_settled(item)


def _item_later(
    item: WithdrawalItem,
    *,
    delay: float,
    code: str,
    message: str,
    explanation: str,
    error: bool = False,
    settle_after: datetime.datetime | None = None,
) -> None:
    """Leave the claimed item pending, due again in ``delay`` seconds, saying why; its task is
    sent for then. ``error``: an upstream call failed (an event records each such outcome)."""
    now = timezone.now()
    with transaction.atomic():
        changes: dict[str, Any] = {
            "next_attempt_at": now + datetime.timedelta(seconds=delay),
            "last_error_code": code[:100],
            "last_error": message,
            "last_error_explanation": explanation,
            "updated_at": now,
        }
        if settle_after is not None:
            changes["settle_after"] = settle_after
        if not _claimed_item(item).update(**changes):
            return
        if error:
            audit_record(
                action="withdrawal.upstream_error",
                obj=item.withdrawal,
                actor_label="withdrawal",
                person_id=item.withdrawal.person_id,
                detail={"item_id": item.pk, "attempt": item.attempts, "code": code,
                        "message": message, "retry_in_seconds": round(delay, 1)},
            )  # fmt: skip
        _enqueue_withdraw_item(item.pk, countdown=delay)
    logger.info("withdrawal item %s: %s; again in %.1f s", item.pk, code, delay)


def _item_fail(item: WithdrawalItem, *, code: str, message: str, explanation: str) -> None:
    """Stop retrying an item no retry can fix; staff retry it once the cause is fixed."""
    now = timezone.now()
    with transaction.atomic():
        if not _claimed_item(item).update(
            status=WithdrawalItemStatus.FAILED,
            next_attempt_at=None,
            last_error_code=code[:100],
            last_error=message,
            last_error_explanation=explanation,
            updated_at=now,
        ):
            return
        audit_record(
            action="withdrawal.item_failed",
            obj=item.withdrawal,
            actor_label="withdrawal",
            person_id=item.withdrawal.person_id,
            detail={"item_id": item.pk, "attempt": item.attempts, "code": code, "message": message},
        )
        _after_item_settled(item)
    logger.warning("withdrawal item %s failed: %s", item.pk, message)


def _after_item_settled(item: WithdrawalItem) -> None:
    """After an item was confirmed or failed: send its group's item when it was the last asset
    of that group to settle; confirm the withdrawal when every item is confirmed."""
    items = WithdrawalItem.objects.filter(withdrawal_id=item.withdrawal_id)
    if (
        not item.is_group
        and not items.filter(
            group_id=item.group_id, asset__isnull=False, status=WithdrawalItemStatus.PENDING
        ).exists()
    ):
        for group_item in items.filter(
            group_id=item.group_id, asset__isnull=True, status=WithdrawalItemStatus.PENDING
        ).values_list("pk", flat=True):
            _enqueue_withdraw_item(group_item)
    if items.unconfirmed().exists():
        return
    now = timezone.now()
    if Withdrawal.objects.filter(pk=item.withdrawal_id, confirmed_at__isnull=True).update(
        confirmed_at=now
    ):
        withdrawal = Withdrawal.objects.get(pk=item.withdrawal_id)
        audit_record(
            action="withdrawal.confirmed",
            obj=withdrawal,
            actor_label="withdrawal",
            person_id=withdrawal.person_id,
            detail={"confirmed_at": now, "items": items.count()},
        )


def withdrawal_item_retry(*, item: WithdrawalItem, actor: Any) -> None:
    """Put a failed item back to work (staff, once the cause is fixed: the key, the URL...)."""
    now = timezone.now()
    with transaction.atomic():
        if not WithdrawalItem.objects.filter(pk=item.pk, status=WithdrawalItemStatus.FAILED).update(
            status=WithdrawalItemStatus.PENDING, next_attempt_at=now, updated_at=now
        ):
            raise ValidationError(
                f"{item} is {item.get_status_display().lower()}: only a failed item is retried."
            )
        audit_record(
            action="withdrawal.item_retried",
            obj=item.withdrawal,
            actor=actor,
            person_id=item.withdrawal.person_id,
            detail={"item_id": item.pk},
        )
        _enqueue_withdraw_item(item.pk)


def withdrawals_sweep(*, now: datetime.datetime | None = None, limit: int = POLL_BATCH) -> int:
    """Re-send the task of every ready pending item overdue by more than a sweep interval: its
    message was lost, or its worker died holding it (the lease ran out). How many were sent.
    Producers' notices not yet given are sent again too.

    Duplicates do no harm: a task claims its item by a conditional UPDATE.
    """
    now = now or timezone.now()
    # Overdue by more than a sweep: the task sent with its countdown normally takes it first.
    grace = datetime.timedelta(seconds=settings.WITHDRAWAL_SWEEP_INTERVAL_SECONDS)
    overdue = (
        WithdrawalItem.objects.ready()
        .filter(status=WithdrawalItemStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now - grace))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    ids = list(overdue)
    for item_id in ids:
        _enqueue_withdraw_item(item_id)
    untold = Withdrawal.objects.filter(
        producers_notified_at__isnull=True, created_at__lte=now - grace
    )
    for withdrawal_id in untold.values_list("pk", flat=True)[:limit]:
        _enqueue_notify_producers(withdrawal_id)
    return len(ids)


def withdrawal_notify_producers(*, withdrawal_id: int) -> None:
    """Tell the producers who copied the references of a withdrawal's assets (email and admin
    notice, ``reference_copies_notify_withdrawn``), once: the claim of ``producers_notified_at``
    and the notices commit together."""
    with transaction.atomic():
        if not Withdrawal.objects.filter(
            pk=withdrawal_id, producers_notified_at__isnull=True
        ).update(producers_notified_at=timezone.now()):
            return
        withdrawal = Withdrawal.objects.select_related("consent").get(pk=withdrawal_id)
        asset_ids = list(
            withdrawal.items.filter(asset__isnull=False).values_list("asset_id", flat=True)
        )
        reference_copies_notify_withdrawn(
            asset_ids=asset_ids, reason=withdrawal_reason_text(withdrawal)
        )


def withdrawal_reason_text(withdrawal: Withdrawal) -> str:
    """Why a withdrawal happened, in a sentence for producers (who know people by their display
    name only, so it names nobody)."""
    consent = withdrawal.consent
    when = timezone.localtime(withdrawal.created_at).strftime("%Y-%m-%d")
    if withdrawal.reason == WithdrawalReason.REVOKED:
        return f"The person revoked their consent on {when}."
    if withdrawal.reason == WithdrawalReason.EXPIRED:
        return f"The person's consent ended on {consent.expires_on:%Y-%m-%d}."
    return f"A new version of the person's consent, approved on {when}, does not cover them."
