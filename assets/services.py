"""Likeness assets through their upstream life: upload, submit, follow, retry, withdraw, sweep.

Every external effect is a row (``Asset``): its status, attempts, last error and when its next
step is due (``next_attempt_at``). Tasks (``assets.tasks``) only name a row; the functions here
claim it with a conditional UPDATE, call the upstream, and record the outcome with another
conditional UPDATE, so any of them may run twice, or late, without harm::

    asset_create ─► queued ─(asset_submit claims)─► uploading ─CreateAsset─► processing
                      ▲ │  transient error (429, 5xx, timeout): queued again, retried later
                      │ └─ permanent error, or the consent gate closed meanwhile: failed
                      └── lease expired, the worker died: assets_sweep queues it again
    processing ─(assets_poll: the group's listing, GetAsset)─► active | failed
    anything but uploading ─(asset_withdraw: DeleteAsset)─► withdrawn
    a consent ends ─(withdrawal_start, in its transaction)─► queued ones failed (ConsentEnded)
        └─ one WithdrawalItem per asset and deleted group ─(withdrawal_item_process)─► withdrawn

No twins: the upstream refuses a second asset with the same Name in a group (reference G6), and
every row has a Name of its own (``upstream_name``). The client's ``create_asset_reconciled``
relies on that to settle a create whose answer was lost, and every attempt after the first looks
the Name up before it creates anything.

Producers take references through ``reference_copy_create`` (a ledger row and an audit event per
copy, before any text is handed out), and are told by ``reference_copies_notify_withdrawn`` when
assets they copied are withdrawn.

A consent's end is withdrawn upstream with proof (``withdrawal_start``, ``WithdrawalItem`` rows
confirmed by the upstream's answers, ``withdrawals_sweep`` for lost tasks and dead workers), and
its biometric media is destroyed once the retention period has passed (``retention_apply``).

The consent gate reads the consent models only; this module never imports ``consent.services``.

Every change of an asset's status, and every upstream call's outcome that matters, writes an
audit event (``asset.<what happened>``) in the same transaction as the change; the upstream's
words go in its detail (``upstream_outcome``).
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import groupby
from operator import attrgetter
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from assets import seedance
from assets.media import (
    LocationNotRemovable,
    MediaRejected,
    face_precheck,
    sniff_kind,
    strip_location,
    validate_media,
)
from assets.models import (
    Asset,
    AssetGroup,
    AssetKind,
    GroupStatus,
    GroupType,
    NoticeEmail,
    NoticeEmailStatus,
    ProducerNotice,
    ReferenceCopy,
    ReferenceCopyKind,
    Withdrawal,
    WithdrawalItem,
    WithdrawalItemStatus,
    WithdrawalOutcome,
    WithdrawalReason,
    producer_name,
)
from assets.signing import signed_file_url
from assets.upstream import (
    AmbiguousWrite,
    AnyfastClient,
    AssetNotFound,
    GroupNotFound,
    InvalidRequest,
    PermanentUpstreamError,
    RateLimited,
    TransientUpstreamError,
    UpstreamAsset,
    UpstreamAssetType,
    UpstreamError,
    explain_asset_error,
)
from audit.context import current_request_id
from audit.services import audit_record, audited_update
from consent.models import ConsentRecord, Person
from portal.private_files import name_mismatch

logger = logging.getLogger(__name__)

ASSET_TYPES = {
    AssetKind.IMAGE: UpstreamAssetType.IMAGE,
    AssetKind.VIDEO: UpstreamAssetType.VIDEO,
    AssetKind.AUDIO: UpstreamAssetType.AUDIO,
}
_KIND_WORDS: dict[str, str] = {"image": "images", "video": "videos", "audio": "audio"}

# A task enqueued with a countdown may start a moment before the row says it is due.
_CLAIM_SLACK = datetime.timedelta(seconds=1)
# A queued row still unclaimed this long after it was due lost its task message: send another.
RESEND_AFTER = datetime.timedelta(minutes=2)
# A sweep checks at most this many processing assets; the rest wait for the next sweep.
POLL_BATCH = 500
# Checks claimed by a sweep that died are due again after this long.
_POLL_LEASE = datetime.timedelta(minutes=1)

URL_UNREACHABLE_EXPLANATION = (
    "The upstream could not download the file from the portal's signed link: PORTAL_PUBLIC_URL "
    "must be an address the upstream can reach (public HTTPS). Fix it, then Retry."
)
WORKER_LOST_EXPLANATION = (
    "The worker uploading this asset stopped before it recorded the upstream's answer. It is "
    "sent again; the new attempt first looks it up by its Name, so it never makes a twin."
)
NOT_AUTHORISED_EXPLANATION = (
    "Nothing was sent upstream. Fix what is listed (verification or consent), then Retry."
)
# Who acts, in audit events, when no staff member does: the worker running a task.
WORKER = "worker"


def upstream_outcome(
    call: str, error: UpstreamError | None = None, *, token: str | None = None
) -> dict[str, str]:
    """An upstream call's outcome as audit events record it: ``{"upstream": "<Action> ok"}``, or
    ``"<Action> failed <code>"`` with the upstream's words. No secret: the client never puts the
    key in them, the audit trail masks signed links, and a BytedToken they quote (``token``)
    is cut to its last six characters."""
    if error is None:
        return {"upstream": f"{call} ok"}
    code = error.code or type(error).__name__
    message = error.message.replace(token, f"…{token[-6:]}") if token else error.message
    return {"upstream": f"{call} failed {code}", "message": message[:500]}


def _settle(
    rows: QuerySet[Asset],
    asset: Asset,
    action: str,
    changes: dict[str, Any],
    *,
    detail: dict[str, Any] | None = None,
    actor: Any = None,
) -> int:
    """``rows.update(**changes)`` and, if it applied, the event ``asset.<action>``: status,
    upstream Id and error code before and after, in one transaction."""
    return audited_update(
        rows,
        changes,
        obj=asset,
        action=f"asset.{action}",
        person_id=asset.group.person_id,
        recorded=("status", "upstream_id", "error_code"),
        actor=actor,
        actor_label="" if actor is not None else WORKER,
        detail=detail,
    )


# --- The consent gate -------------------------------------------------------------------------


@transaction.atomic
def asset_group_record_liveness(
    *,
    person_id: int,
    group_id: str,
    api_key_fingerprint: str,
    upstream_verification_id: int | None,
) -> AssetGroup:
    """Record the LivenessFace group a verification made (GetVisualValidateResult's GroupId).

    Idempotent: a GroupId already recorded for the same person returns that row (linking it to
    ``upstream_verification_id`` if it had no session). The same GroupId for another person is
    refused: a LivenessFace group holds one person only. The fingerprint is that of the API key
    that created the verification session, which owns the group upstream.
    """
    group = AssetGroup.objects.select_for_update().filter(group_id=group_id).first()
    if group is not None:
        if group.person_id != person_id:
            raise ValidationError(f"Group {group_id} already belongs to another person.")
        if group.upstream_verification_id is None and upstream_verification_id is not None:
            group.upstream_verification_id = upstream_verification_id
            group.save(update_fields=["upstream_verification"])
            _audit_group(group, "group.linked")
        return group
    group = AssetGroup.objects.create(
        group_id=group_id,
        group_type=GroupType.LIVENESS_FACE,
        person_id=person_id,
        upstream_verification_id=upstream_verification_id,
        api_key_fingerprint=api_key_fingerprint,
    )
    _audit_group(group, "group.created")
    return group


def _audit_group(group: AssetGroup, action: str) -> None:
    audit_record(
        action=action,
        obj=group,
        actor_label=WORKER,
        person_id=group.person_id,
        after={
            "group_type": group.group_type,
            "upstream_verification_id": group.upstream_verification_id,
            "api_key_fingerprint": group.api_key_fingerprint,
        },
    )


def upload_group_for(person: Person) -> AssetGroup | None:
    """The group a person's new files go to: their newest active group that verification made."""
    groups = person.asset_groups.filter(status=GroupStatus.ACTIVE).order_by("-created_at", "-pk")
    return next((group for group in groups if group.is_verified_liveness()), None)


def consent_for_upload(
    person: Person, *, kind: str, on: datetime.date | None = None
) -> ConsentRecord | None:
    """The person's newest approved consent in force on ``on`` (today) that covers ``kind``."""
    return (
        ConsentRecord.objects.filter(person=person)
        .in_force(on)
        .covering(kind)
        .order_by("-starts_on", "-created_at", "-pk")
        .first()
    )


def group_refusals(*, person: Person, group: AssetGroup | None) -> list[str]:
    """Why ``person``'s files may not go into ``group`` (none: they may)."""
    if group is None:
        return [
            f"{person} has no verified real-person group. Such a (LivenessFace) group comes only "
            "from a completed verification: invite them to verify first."
        ]
    reasons = []
    if group.person_id != person.pk:
        reasons.append(f"Group {group} is another person's.")
    if not group.is_verified_liveness():
        if group.group_type != GroupType.LIVENESS_FACE:
            reasons.append(
                f"Group {group} is an {group.group_type} group: a real person's files go only "
                "to the LivenessFace group their verification made."
            )
        else:
            reasons.append(
                f"Group {group} was not made by a completed verification: it cannot take a real "
                "person's files."
            )
    if group.status != GroupStatus.ACTIVE:
        reasons.append(f"Group {group} is withdrawn: it takes no new files.")
    return reasons


def consent_refusals(
    *,
    person: Person,
    consent: ConsentRecord | None,
    kind: str | None,
    on: datetime.date | None = None,
) -> list[str]:
    """Why ``consent`` does not authorise ``person``'s file of ``kind`` on ``on`` (today).

    ``consent`` None means none was found in force covering ``kind``; ``kind`` None (a file that
    could not be read) checks everything but the coverage. The same rule as
    ``ConsentRecord.objects.in_force(on).covering(kind)``, spelt out reason by reason.
    """
    day = on or timezone.localdate()
    if consent is None:
        if kind is None:
            return []
        return [
            f"{person} has no approved consent in force today that covers {_KIND_WORDS[kind]}: "
            "record one and have it approved first."
        ]
    label = f"Consent record #{consent.pk}"
    reasons = []
    if consent.person_id != person.pk:
        reasons.append(f"{label} is another person's.")
    if consent.status != ConsentRecord.Status.APPROVED:
        reasons.append(f"{label} is {consent.get_status_display().lower()}, not approved.")
    if consent.starts_on > day:
        reasons.append(f"{label} starts on {consent.starts_on:%Y-%m-%d}: not in force yet.")
    if consent.expires_on is not None and consent.expires_on < day:
        reasons.append(f"{label} ended on {consent.expires_on:%Y-%m-%d}.")
    if kind is not None and kind not in consent.media_types():
        covered = ", ".join(_KIND_WORDS[k] for k in consent.media_types())
        reasons.append(f"{label} does not cover {_KIND_WORDS[kind]} (it covers {covered}).")
    return reasons


# --- Upload -----------------------------------------------------------------------------------


def asset_create(
    *,
    person: Person,
    uploaded_file: File,
    uploaded_by: Any,
    group: AssetGroup | None = None,
    consent: ConsentRecord | None = None,
) -> Asset:
    """Check an uploaded file, and if it passes, store it and queue its upload.

    The file must meet the upstream's limits (``assets.media``) and its name must not contradict
    its measured type; ``person`` must have a group made by a completed verification (``group``,
    or their newest one) and an approved consent in force today covering the file's kind
    (``consent``, or their newest such one). These are checked first, from the file's signature
    alone: a file is decoded only for a person who may upload it. Otherwise ``ValidationError``
    lists every reason of the first check that fails and nothing is stored. The upload task is
    enqueued when the transaction commits.
    """
    filename = os.path.basename(uploaded_file.name or "upload")
    fileobj = cast(BinaryIO, uploaded_file)
    # The gate first, from the file's signature alone: the file of a person who may not upload
    # is never decoded (decoding a hostile file can cost seconds; issue 13).
    kind = sniff_kind(fileobj)
    group = group if group is not None else upload_group_for(person)
    if consent is None and kind is not None:
        consent = consent_for_upload(person, kind=kind)
    reasons = group_refusals(person=person, group=group)
    reasons += consent_refusals(person=person, consent=consent, kind=kind)
    if reasons or group is None:
        raise ValidationError(reasons)
    try:
        info = validate_media(fileobj, filename=filename)
    except MediaRejected as rejected:
        raise ValidationError([violation.message for violation in rejected.violations]) from None
    if mismatch := name_mismatch(filename, info.content_type):
        raise ValidationError([mismatch])
    try:
        location_free = strip_location(fileobj, info)
    except LocationNotRemovable as error:
        raise ValidationError(
            [
                f"“{filename}” carries metadata that could not be read to remove its location: "
                f"{error}. Export it again from the camera or editing software."
            ]
        ) from error

    asset = Asset(
        group=group,
        consent=consent,
        file=uploaded_file,
        uploaded_by=uploaded_by,
        status=Asset.Status.QUEUED,
        next_attempt_at=timezone.now(),
        precheck_warnings=face_precheck(fileobj, info),
    )
    asset.record_measurements(info, original_filename=filename)
    if location_free is not None:
        # The upstream downloads this copy; the stored original keeps its bytes and hash.
        asset.upstream_copy = File(location_free, name=filename)
    try:
        with transaction.atomic():
            asset.save()
            audit_record(
                action="asset.created",
                obj=asset,
                actor=uploaded_by,
                person_id=person.pk,
                after={
                    "status": asset.status,
                    "kind": asset.kind,
                    "sha256": asset.sha256,
                    "size_bytes": asset.size_bytes,
                    "group_id": group.group_id,
                    "consent_id": asset.consent_id,
                },
                detail={"original_filename": filename, "location_removed": bool(location_free)},
            )
            _enqueue_submit(asset.pk)
    except IntegrityError:
        # The database enforces the constraints; only now ask which one, in words (the same file
        # is already in the group), rather than run every check as a query on every upload.
        try:
            asset.validate_constraints()
        except ValidationError as error:
            raise ValidationError(error.messages) from error
        raise
    finally:
        if location_free is not None:
            location_free.close()
    return asset


def _enqueue_submit(asset_id: int, *, countdown: float | None = None) -> None:
    """Send the asset's upload task once the current transaction commits."""
    from assets.tasks import submit_asset

    transaction.on_commit(lambda: submit_asset.apply_async((asset_id,), countdown=countdown))


# --- Submit: CreateAsset ----------------------------------------------------------------------


def asset_submit(*, asset_id: int, client: AnyfastClient | None = None) -> None:
    """Register a queued asset upstream: CreateAsset with a signed link to its file.

    Does nothing unless the row is queued and due. On success the asset is ``processing`` with its
    upstream Id; on a transient error it is queued again for later (429s never fail an asset);
    on a permanent one it is ``failed`` with the error and what to do.
    """
    asset = _claim_upload(asset_id)
    if asset is None:
        logger.info("asset %s: not queued or not due, nothing to submit", asset_id)
        return
    refusals = group_refusals(person=asset.group.person, group=asset.group)
    refusals += consent_refusals(person=asset.group.person, consent=asset.consent, kind=asset.kind)
    if refusals:
        _settle(
            _claimed(asset),
            asset,
            "failed",
            {
                "status": Asset.Status.FAILED,
                "next_attempt_at": None,
                "error_code": "NotAuthorised",
                "error_message": " ".join(refusals),
                "error_explanation": NOT_AUTHORISED_EXPLANATION,
            },
            detail={"refusals": refusals},
        )
        return
    with _upstream(client) as upstream:
        try:
            upstream_id = _create_once(upstream, asset)
        except (TransientUpstreamError, AmbiguousWrite) as error:
            _requeue(asset, error)
            return
        except PermanentUpstreamError as error:
            _settle(
                _claimed(asset),
                asset,
                "failed",
                {
                    "status": Asset.Status.FAILED,
                    "next_attempt_at": None,
                    **_error_fields(error, _explain_create_error(error)),
                },
                detail=upstream_outcome("CreateAsset", error),
            )
            return
        _record_accepted(asset, upstream_id, upstream)


def _claim_upload(asset_id: int) -> Asset | None:
    """Take a due queued row for this worker: ``uploading``, one more attempt, under a lease.

    ``attempts`` after the claim is the claim's token: only this claim's writes match it.
    """
    now = timezone.now()
    lease = datetime.timedelta(seconds=settings.ASSET_UPLOAD_LEASE_SECONDS)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + _CLAIM_SLACK)
    with transaction.atomic():
        claimed = Asset.objects.filter(due, pk=asset_id, status=Asset.Status.QUEUED).update(
            status=Asset.Status.UPLOADING, attempts=F("attempts") + 1, next_attempt_at=now + lease
        )
        if not claimed:
            return None
        asset = Asset.objects.select_related("group__person", "consent").get(pk=asset_id)
        audit_record(
            action="asset.submitted",
            obj=asset,
            actor_label=WORKER,
            person_id=asset.group.person_id,
            before={"status": Asset.Status.QUEUED},
            after={"status": asset.status},
            detail={"attempt": asset.attempts},
        )
    return asset


def _claimed(asset: Asset) -> QuerySet[Asset]:
    """The row, as long as this worker's claim still holds it."""
    return Asset.objects.filter(pk=asset.pk, status=Asset.Status.UPLOADING, attempts=asset.attempts)


def _create_once(upstream: AnyfastClient, asset: Asset) -> str:
    """The upstream Id of the asset's one upstream copy, created now unless it already exists.

    ``create_asset_reconciled`` settles a create whose answer is lost (it never makes a twin);
    a later attempt first looks the Name up, so an asset an earlier attempt created (its worker
    killed before it recorded the answer) costs no second CreateAsset.
    """
    group = asset.group
    if asset.attempts > 1:
        found = upstream.find_asset_by_name(
            group.group_id, asset.upstream_name, group_type=group.group_type
        )
        if found is not None:
            return found.id
    created = upstream.create_asset_reconciled(
        group.group_id,
        asset.upstream_name,
        ASSET_TYPES[AssetKind(asset.kind)],
        signed_file_url(asset.upstream_file),
        group_type=group.group_type,
    )
    return created.id


def _requeue(asset: Asset, error: UpstreamError) -> None:
    """Queue the claimed row again after a transient error, and send its task for then."""
    delay = _retry_delay(asset.attempts, error)
    if _settle(
        _claimed(asset),
        asset,
        "requeued",
        {
            "status": Asset.Status.QUEUED,
            "next_attempt_at": timezone.now() + datetime.timedelta(seconds=delay),
            **_error_fields(error, error.explanation),
        },
        detail={**upstream_outcome("CreateAsset", error), "retry_in_seconds": round(delay, 1)},
    ):
        logger.info("asset %s: %s; retrying in %.1f s", asset.pk, error, delay)
        _enqueue_submit(asset.pk, countdown=delay)


def _retry_delay(attempts: int, error: UpstreamError | None = None) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, with jitter, within the settings'
    bounds; never less than a 429's ``Retry-After``."""
    ceiling = min(
        settings.ASSET_RETRY_MAX_SECONDS, settings.ASSET_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    )
    # Half fixed, half random: never zero, and workers retrying together spread out.
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
    if isinstance(error, RateLimited) and error.retry_after:
        delay = max(delay, error.retry_after)
    return delay


def _error_fields(error: UpstreamError, explanation: str) -> dict[str, str]:
    """The row's last-error fields for ``error``."""
    return {
        "error_code": (error.code or type(error).__name__)[:100],
        "error_message": error.message,
        "error_explanation": explanation,
    }


def _explain_create_error(error: PermanentUpstreamError) -> str:
    """What a refused CreateAsset means for staff: the guide's words where it has a row."""
    if isinstance(error, InvalidRequest) and error.code:
        detail = error.code.rsplit(".", 1)[-1]
        if detail == "URL":
            return URL_UNREACHABLE_EXPLANATION
        if error.code.startswith(("InvalidParameter", "***")):
            # A file outside the limits (size, format, resolution…): the same words as a Failed
            # asset's error.
            return explain_asset_error(detail, error.message)
    return error.explanation


def _record_accepted(asset: Asset, upstream_id: str, upstream: AnyfastClient) -> None:
    now = timezone.now()
    accepted = _settle(
        _claimed(asset),
        asset,
        "accepted",
        {
            "status": Asset.Status.PROCESSING,
            "upstream_id": upstream_id,
            "submitted_at": now,
            "next_attempt_at": now + datetime.timedelta(seconds=settings.ASSET_POLL_FIRST_SECONDS),
            "error_code": "",
            "error_message": "",
            "error_explanation": "",
        },
        detail=upstream_outcome("CreateAsset"),
    )
    if accepted:
        return
    # The claim was lost meanwhile: the sweeper queued the row again (its next attempt finds
    # this asset by Name), or staff withdrew it, and then the upstream copy must go.
    if Asset.objects.filter(pk=asset.pk, status=Asset.Status.WITHDRAWN).exists():
        outcome = _delete_upstream_audited(upstream, upstream_id, asset=asset)
        audit_record(
            action="asset.late_copy_deleted",
            obj=asset,
            actor_label=WORKER,
            person_id=asset.group.person_id,
            detail={"upstream_id": upstream_id, **outcome},
        )
    logger.warning("asset %s: uploaded as %s after its claim was lost", asset.pk, upstream_id)


# --- Follow: GetAsset -------------------------------------------------------------------------


def assets_poll(*, client: AnyfastClient | None = None, limit: int = POLL_BATCH) -> int:
    """Check the assets processing upstream whose check is due, group by group; how many.

    Active and Failed are recorded (Failed with the guide's explanation: ``FaceMismatch``…); an
    asset still processing is checked again later, less often as it ages; one the upstream still
    does not know ``ASSET_NOT_FOUND_GRACE_SECONDS`` after accepting it has failed processing.
    """
    assets = _claim_polls(limit)
    if not assets:
        return 0
    with _upstream(client) as upstream:
        for group, members in groupby(assets, key=attrgetter("group")):
            members_list = list(members)
            states = _upstream_states(upstream, group, members_list)
            for asset in members_list:
                state = states[asset.pk]
                rows = Asset.objects.filter(pk=asset.pk, status=Asset.Status.PROCESSING)
                if isinstance(state, UpstreamAsset | AssetNotFound):
                    _record_state(rows, asset, state)
                else:  # the check itself failed: keep what it said, check again later
                    changes = {
                        "next_attempt_at": timezone.now() + _poll_delay(asset),
                        **_error_fields(state, state.explanation),
                    }
                    if changes["error_code"] == asset.error_code:
                        rows.update(**changes)  # told already: one event per new error
                    else:
                        outcome = upstream_outcome(_READ_CALLS, state)
                        _settle(rows, asset, "upstream_error", changes, detail=outcome)
    return len(assets)


def _claim_polls(limit: int) -> list[Asset]:
    """The due processing assets, ordered by group, taken from concurrent sweeps for a while."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            Asset.objects.due_for_poll(now)
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        Asset.objects.filter(pk__in=ids).update(next_attempt_at=now + _POLL_LEASE)
    return list(Asset.objects.filter(pk__in=ids).select_related("group").order_by("group_id", "pk"))


def _upstream_states(
    upstream: AnyfastClient, group: AssetGroup, assets: list[Asset]
) -> dict[int, UpstreamAsset | UpstreamError]:
    """Each asset's upstream state (or the error that stopped reading it), by asset pk.

    One listing of the group for all of them (``get_assets``: usually one ListAssets call),
    within the shared rate limits; an asset the listing does not show is asked for on its own
    (GetAsset, which may see what the listing does not, docs/upstream.md §4.5), so that one the
    upstream really does not know ends as ``AssetNotFound``.
    """
    states: dict[int, UpstreamAsset | UpstreamError] = {}
    try:
        listed = upstream.get_assets(
            [str(asset.upstream_id) for asset in assets],
            group_id=group.group_id,
            group_type=group.group_type,
        )
    except UpstreamError as error:
        return {asset.pk: error for asset in assets}
    for asset in assets:
        state = listed.get(str(asset.upstream_id))
        if state is None:
            try:
                state = upstream.get_asset(
                    str(asset.upstream_id),
                    group_id=group.group_id,
                    name=asset.upstream_name,
                    group_type=group.group_type,
                )
            except UpstreamError as error:
                states[asset.pk] = error
                continue
        states[asset.pk] = state
    return states


# What reads an asset's upstream state (a listing of its group, else GetAsset).
_READ_CALLS = "ListAssets/GetAsset"


def _record_state(
    rows: QuerySet[Asset],
    asset: Asset,
    state: UpstreamAsset | AssetNotFound,
    *,
    refreshed: bool = False,
    actor: Any = None,
) -> None:
    """Write what the upstream said about ``asset`` to ``rows`` (it, while still as expected),
    with an event when its status changes (``asset.active``, ``asset.failed``), or always
    (``asset.refreshed``, by ``actor``) when someone asked."""
    now = timezone.now()
    changes: dict[str, Any]
    if isinstance(state, AssetNotFound):
        outcome = upstream_outcome(_READ_CALLS, state)
        accepted = asset.submitted_at or asset.created_at
        grace = datetime.timedelta(seconds=settings.ASSET_NOT_FOUND_GRACE_SECONDS)
        if now - accepted < grace:
            changes = {"next_attempt_at": now + _poll_delay(asset)}
        else:
            changes = {
                "status": Asset.Status.FAILED,
                "next_attempt_at": None,
                **_error_fields(state, state.explanation),
            }
    else:
        outcome = {**upstream_outcome(_READ_CALLS), "upstream_status": state.status}
        cleared = {"error_code": "", "error_message": "", "error_explanation": ""}
        if state.is_active:
            changes = {"status": Asset.Status.ACTIVE, "next_attempt_at": None, **cleared}
        elif state.is_failed:
            outcome["message"] = f"{state.error_code} {state.error_message}".strip()[:500]
            changes = {
                "status": Asset.Status.FAILED,
                "next_attempt_at": None,
                "error_code": (state.error_code or "Failed")[:100],
                "error_message": state.error_message,
                "error_explanation": state.explanation,
            }
        else:  # Processing (or Anyfast's unexplained Inactive): not usable yet
            changes = {
                "status": Asset.Status.PROCESSING,
                "next_attempt_at": now + _poll_delay(asset),
                **cleared,
            }
    status = changes.get("status", asset.status)
    if not refreshed and status == asset.status:
        rows.update(**changes)  # nothing new to tell
        return
    _settle(rows, asset, "refreshed" if refreshed else status, changes, detail=outcome, actor=actor)


def _poll_delay(asset: Asset) -> datetime.timedelta:
    """A quarter of the time since the upstream accepted the asset, within the settings'
    bounds: quick checks while processing usually ends, fewer for a slow one."""
    age = (timezone.now() - (asset.submitted_at or asset.created_at)).total_seconds()
    seconds = min(max(age / 4, settings.ASSET_POLL_FIRST_SECONDS), settings.ASSET_POLL_MAX_SECONDS)
    return datetime.timedelta(seconds=seconds)


def asset_refresh(*, asset: Asset, client: AnyfastClient | None = None, actor: Any = None) -> Asset:
    """Ask the upstream for the asset's state now and record it (Active, Failed, or gone), with
    an ``asset.refreshed`` event by ``actor`` (staff; the worker when None).

    For an asset with an upstream Id (processing, active or failed); an error reading it is
    raised, not recorded.
    """
    refreshable = (Asset.Status.PROCESSING, Asset.Status.ACTIVE, Asset.Status.FAILED)
    if asset.status not in refreshable or not asset.upstream_id:
        raise ValidationError(
            f"{asset} is {asset.get_status_display().lower()}: only an asset the upstream "
            "accepted has a status there to refresh."
        )
    with _upstream(client) as upstream:
        state = _upstream_states(upstream, asset.group, [asset])[asset.pk]
    if isinstance(state, UpstreamError) and not isinstance(state, AssetNotFound):
        raise state
    rows = Asset.objects.filter(pk=asset.pk, status__in=refreshable)
    _record_state(rows, asset, state, refreshed=True, actor=actor)
    asset.refresh_from_db()
    return asset


# --- Staff actions: retry, withdraw -----------------------------------------------------------


def asset_retry(*, asset: Asset, client: AnyfastClient | None = None, actor: Any = None) -> None:
    """Send a failed asset again (after deleting its failed upstream copy, which holds its
    Name), or a queued one now rather than at its next attempt; ``actor`` asked."""
    now = timezone.now()
    if asset.status == Asset.Status.QUEUED:
        with transaction.atomic():
            if _settle(
                Asset.objects.filter(pk=asset.pk, status=Asset.Status.QUEUED),
                asset,
                "retried",
                {"status": Asset.Status.QUEUED, "next_attempt_at": now},
                actor=actor,
            ):
                _enqueue_submit(asset.pk)
        return
    if asset.status != Asset.Status.FAILED:
        raise ValidationError(
            f"{asset} is {asset.get_status_display().lower()}: only a failed or queued asset "
            "can be retried."
        )
    outcome = {}
    if asset.upstream_id:
        with _upstream(client) as upstream:
            outcome = _delete_upstream_audited(
                upstream, asset.upstream_id, asset=asset, actor=actor
            )
    try:
        with transaction.atomic():
            if _settle(
                Asset.objects.filter(pk=asset.pk, status=Asset.Status.FAILED),
                asset,
                "retried",
                {
                    "status": Asset.Status.QUEUED,
                    "upstream_id": None,
                    "submitted_at": None,
                    "next_attempt_at": now,
                    "error_code": "",
                    "error_message": "",
                    "error_explanation": "",
                },
                detail=outcome,
                actor=actor,
            ):
                _enqueue_submit(asset.pk)
    except IntegrityError as error:
        raise ValidationError(
            f"{asset}: the same file is already registered in this group again."
        ) from error


def asset_withdraw(*, asset: Asset, client: AnyfastClient | None = None, actor: Any = None) -> None:
    """Delete the asset upstream (DeleteAsset), then mark it ``withdrawn``; its reference stops
    working. Refused while it is being uploaded: withdraw it once the upload has finished.
    ``actor`` asked (the worker when None)."""
    if asset.status == Asset.Status.WITHDRAWN:
        return
    busy = ValidationError(
        f"{asset} is being uploaded right now: withdraw it again once the upload has finished."
    )
    if asset.status == Asset.Status.UPLOADING:
        raise busy
    with _upstream(client) as upstream:
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
            outcome = _delete_upstream_audited(upstream, upstream_id, asset=asset, actor=actor)
    withdrawn = _settle(
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


def _delete_upstream(upstream: AnyfastClient, upstream_id: str) -> str:
    """DeleteAsset; an asset the upstream no longer knows is deleted already.

    Returns the ``WithdrawalOutcome``: ``deleted`` (the upstream answered OK) or ``already_gone``
    (it answered NotFound). A lost answer is settled with GetAsset: gone only if the upstream no
    longer knows it; otherwise ``AmbiguousWrite`` is raised and the caller tries again later.
    """
    try:
        upstream.delete_asset(upstream_id)
    except AssetNotFound:
        return WithdrawalOutcome.ALREADY_GONE
    except AmbiguousWrite:
        try:
            upstream.get_asset(upstream_id)
        except AssetNotFound:
            return WithdrawalOutcome.DELETED
        raise
    return WithdrawalOutcome.DELETED


def _delete_upstream_audited(
    upstream: AnyfastClient, upstream_id: str, *, asset: Asset, actor: Any = None
) -> dict[str, str]:
    """``_delete_upstream``, and its outcome for the audit trail; a failure is recorded
    (``asset.upstream_error``) and raised."""
    try:
        outcome = _delete_upstream(upstream, upstream_id)
    except UpstreamError as error:
        audit_record(
            action="asset.upstream_error",
            obj=asset,
            actor=actor,
            actor_label="" if actor is not None else WORKER,
            person_id=asset.group.person_id,
            detail={"upstream_id": upstream_id, **upstream_outcome("DeleteAsset", error)},
        )
        raise
    if outcome == WithdrawalOutcome.ALREADY_GONE:
        return {"upstream": "DeleteAsset: not found upstream, deleted already"}
    return upstream_outcome("DeleteAsset")


# --- The sweeper ------------------------------------------------------------------------------


def assets_sweep(*, client: AnyfastClient | None = None) -> dict[str, int]:
    """What beat runs every ``ASSET_SWEEP_INTERVAL_SECONDS``; counts of what it did.

    * ``requeued``: uploads whose worker's lease ran out (killed mid-upload) are queued again;
    * ``resent``: queued uploads still unclaimed ``RESEND_AFTER`` after they were due (their
      task message was lost) get a new task;
    * ``polled``: the processing assets due for a check are checked (``assets_poll``).
    """
    now = timezone.now()
    requeued = 0
    for asset in Asset.objects.upload_lease_expired(now).select_related("group"):
        with transaction.atomic():
            if _settle(
                Asset.objects.upload_lease_expired(now).filter(pk=asset.pk),
                asset,
                "requeued",
                {
                    "status": Asset.Status.QUEUED,
                    "next_attempt_at": now,
                    "error_code": "WorkerLost",
                    "error_message": "The lease ran out before the worker recorded an answer.",
                    "error_explanation": WORKER_LOST_EXPLANATION,
                },
            ):
                requeued += 1
                _enqueue_submit(asset.pk)
    resent = 0
    stale = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now - RESEND_AFTER)
    for asset_id in Asset.objects.filter(stale, status=Asset.Status.QUEUED).values_list(
        "pk", flat=True
    )[:POLL_BATCH]:
        with transaction.atomic():
            # Due still, but not sent again before another RESEND_AFTER.
            if Asset.objects.filter(stale, pk=asset_id, status=Asset.Status.QUEUED).update(
                next_attempt_at=now
            ):
                resent += 1
                _enqueue_submit(asset_id)
    polled = assets_poll(client=client)
    return {"requeued": requeued, "resent": resent, "polled": polled}


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
    """Send the item's task once the current transaction commits.

    Robust: a broker that refuses the message must not fail a revocation already committed;
    ``withdrawals_sweep`` sends it again.
    """
    from assets.tasks import withdraw_item

    transaction.on_commit(
        lambda: withdraw_item.apply_async((item_id,), countdown=countdown), robust=True
    )


def _enqueue_notify_producers(withdrawal_id: int) -> None:
    """Send the producers' notice task on commit (robust: ``withdrawals_sweep`` resends)."""
    from assets.tasks import notify_producers_of_withdrawal

    transaction.on_commit(
        lambda: notify_producers_of_withdrawal.apply_async((withdrawal_id,)), robust=True
    )


def withdrawal_item_process(*, item_id: int, client: AnyfastClient | None = None) -> None:
    """Work one withdrawal item: delete its asset (or group) upstream and record the proof.

    Does nothing unless the item is pending and due (a group's item: and its assets' items of the
    same withdrawal have settled). Confirmed when the upstream answers OK or NotFound; a
    transient error sets the next attempt (exponential backoff with jitter, for ever); an error
    no retry can fix fails the item, for staff to retry.
    """
    item = _claim_item(item_id)
    if item is None:
        logger.info("withdrawal item %s: not pending, due or ready; nothing to do", item_id)
        return
    try:
        with _upstream(client) as upstream:
            if item.is_group:
                _withdraw_group(item, upstream)
            else:
                _withdraw_asset(item, upstream)
    except (TransientUpstreamError, AmbiguousWrite) as error:
        delay = _retry_delay(item.attempts, error)
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
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + _CLAIM_SLACK)
    claimed = (
        WithdrawalItem.objects.ready()
        .filter(due, pk=item_id, status=WithdrawalItemStatus.PENDING)
        .update(attempts=F("attempts") + 1, next_attempt_at=now + lease)
    )
    if not claimed:
        return None
    return WithdrawalItem.objects.select_related("withdrawal", "group").get(pk=item_id)


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
            delay=max(min(lease_end - now, _WITHDRAWAL_RECHECK), _CLAIM_SLACK).total_seconds(),
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
    if upstream_id:
        try:
            outcome = _delete_upstream(upstream, upstream_id)
        except GroupNotFound:
            # The key owns the group (checked above), so its group is gone, and the asset too.
            outcome = WithdrawalOutcome.ALREADY_GONE
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
        outcome = WithdrawalOutcome.NOT_FOUND_BY_NAME
    else:
        outcome = WithdrawalOutcome.NEVER_UPLOADED
    _confirm_asset_item(item, outcome=outcome, upstream_id=upstream_id or "")


def _confirm_asset_item(item: WithdrawalItem, *, outcome: str, upstream_id: str) -> None:
    """Record the upstream's confirmation, and the asset as withdrawn, in one transaction."""
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
    try:
        upstream.delete_asset_group(group.group_id)
    except GroupNotFound:
        outcome = WithdrawalOutcome.ALREADY_GONE  # the key owns it (checked): it is gone
    else:
        outcome = WithdrawalOutcome.DELETED
    # An AmbiguousWrite (no answer) is raised: the next attempt's answer settles it, NotFound
    # meaning that this one went through.
    now = timezone.now()
    with transaction.atomic():
        if not _claimed_item(item).update(
            status=WithdrawalItemStatus.CONFIRMED,
            outcome=outcome,
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


# --- Helpers ----------------------------------------------------------------------------------


@contextmanager
def _upstream(client: AnyfastClient | None) -> Iterator[AnyfastClient]:
    """The given client, or a new one from the settings, closed afterwards."""
    if client is not None:
        yield client
        return
    with AnyfastClient() as made:
        yield made


# --- Producers: reference copies, and telling producers when a reference is withdrawn ----------

# An email that failed this many times is given up (``failed``), its last error kept on the row.
MAX_NOTICE_EMAIL_ATTEMPTS = 5


class ReferenceNotUsable(ValidationError):
    """Assets asked for may no longer be referenced (consent ended or revoked, asset or group
    withdrawn): the references page answers 409 with the messages, naming ``asset_ids``."""

    def __init__(self, messages: list[str], *, asset_ids: list[int]) -> None:
        super().__init__(messages)
        self.asset_ids = asset_ids


@dataclass(frozen=True)
class CopiedReferences:
    """What ``reference_copy_create`` recorded, and the text for the clipboard."""

    text: str
    copies: list[ReferenceCopy]


def reference_copy_create(
    *, user: Any, asset_ids: Sequence[int], project: str, kind: str
) -> CopiedReferences:
    """Record that ``user`` copies the references of ``asset_ids`` for ``project``; the text.

    ``kind`` is a ``ReferenceCopy.Kind``: ``reference`` (``asset://<Id>``) and ``content_item``
    (one Seedance 2.0 content item, JSON) take one asset, ``content_array`` (the items of all of
    them in the documented order, JSON) one to the documented maximum of each kind
    (``assets.seedance``). Every asset must be usable by producers now
    (``Asset.objects.usable_by_producers``), else ``ReferenceNotUsable`` says why; ``project``
    must be one of each asset's consent uses, else ``ValidationError``. One ``ReferenceCopy`` row
    and one audit event per asset are written in the same transaction, before any text is
    returned: no reference leaves without its row.

    The asset, consent and group rows are locked first, then read again: a revocation or a
    withdrawal committed meanwhile is seen, and one in progress waits for this copy to commit
    (and so finds it when producers are told).
    """
    ids = list(dict.fromkeys(asset_ids))
    if kind not in ReferenceCopyKind.values:
        raise ValidationError(f"Unknown kind of copy: {kind!r}.")
    if kind != ReferenceCopyKind.CONTENT_ARRAY and len(ids) != 1:
        raise ValidationError("A reference or a content item is copied for one asset at a time.")
    if not ids:
        raise ValidationError("Select at least one asset.")
    project = project.strip()
    with transaction.atomic():
        locked = _lock_for_copy(ids)
        usable = (
            Asset.objects.usable_by_producers()
            .filter(pk__in=ids)
            .select_related("consent", "group__person")
            .prefetch_related("consent__uses")
        )
        by_pk = {asset.pk: asset for asset in usable}
        if unusable := [pk for pk in ids if pk not in by_pk]:
            raise ReferenceNotUsable(
                [_not_usable_reason(pk, locked.get(pk)) for pk in unusable], asset_ids=unusable
            )
        assets = [by_pk[pk] for pk in ids]
        problems = [problem for asset in assets for problem in _project_problems(asset, project)]
        if kind == ReferenceCopyKind.CONTENT_ARRAY:
            problems += seedance.selection_problems(asset.kind for asset in assets)
        if problems:
            raise ValidationError(problems)
        copies = []
        for asset in assets:
            copy = ReferenceCopy.objects.create(
                user=user,
                asset=asset,
                reference=asset.asset_uri,
                project=project,
                kind=kind,
                request_id=current_request_id(),
            )
            audit_record(
                action="reference.copied",
                obj=copy,
                actor=user,
                person_id=asset.group.person_id,
                detail={
                    "asset": asset.pk,
                    "reference": copy.reference,
                    "project": project,
                    "copied_as": kind,
                },
            )
            copies.append(copy)
    return CopiedReferences(text=_copied_text(kind, assets), copies=copies)


def _lock_for_copy(ids: list[int]) -> dict[int, Asset]:
    """Lock the assets, their groups and their consents (by pk), as they are now."""
    assets = {
        asset.pk: asset
        for asset in Asset.objects.filter(pk__in=ids)
        .select_related("group__person")
        .select_for_update(of=("self", "group"))
    }
    consents = ConsentRecord.objects.filter(
        pk__in={asset.consent_id for asset in assets.values()}
    ).select_for_update()
    by_pk = {consent.pk: consent for consent in consents}
    for asset in assets.values():
        asset.consent = by_pk.get(asset.consent_id) if asset.consent_id else None
    return assets


def _copied_text(kind: str, assets: list[Asset]) -> str:
    if kind == ReferenceCopyKind.REFERENCE:
        return assets[0].asset_uri
    if kind == ReferenceCopyKind.CONTENT_ITEM:
        return json.dumps(seedance.content_item(assets[0].kind, assets[0].asset_uri), indent=2)
    pairs = [(asset.kind, asset.asset_uri) for asset in assets]
    return json.dumps(seedance.content_array(pairs), indent=2)


def _producer_label(asset: Asset) -> str:
    """An asset as producers know it: its reference, the person's display name, its kind."""
    reference = asset.asset_uri or f"Asset #{asset.pk}"
    person = producer_name(asset.group.person)
    return f"{reference} ({person}, {asset.get_kind_display().lower()})"


def _not_usable_reason(asset_id: int, asset: Asset | None) -> str:
    """Why producers may no longer reference an asset, in their words (no legal name, no
    consent details beyond its state)."""
    if asset is None:
        return f"Asset #{asset_id} does not exist."
    label = _producer_label(asset)
    consent = asset.consent
    today = timezone.localdate()
    if asset.status != Asset.Status.ACTIVE:
        why = f"it is {asset.get_status_display().lower()}, not active"
    elif asset.group.status != GroupStatus.ACTIVE:
        why = "the person's asset group was withdrawn"
    elif consent is None:
        why = "no consent authorises it"
    elif consent.status != ConsentRecord.Status.APPROVED:
        why = f"its consent is {consent.get_status_display().lower()}"
    elif consent.starts_on > today:
        why = f"its consent starts on {consent.starts_on:%Y-%m-%d}"
    elif consent.expires_on is not None and consent.expires_on < today:
        why = f"its consent ended on {consent.expires_on:%Y-%m-%d}"
    else:
        why = f"its consent does not cover {_KIND_WORDS[asset.kind]}"
    return f"{label} can no longer be used: {why}. Reload the page."


def _project_problems(asset: Asset, project: str) -> list[str]:
    """Why ``asset`` may not be copied for ``project``: it must be one of its consent's uses."""
    if not project:
        return ["State the project you are copying for."]
    projects = consent_projects(asset.consent)
    label = _producer_label(asset)
    if not projects:
        return [f"The consent of {label} describes no use: it cannot be copied for a project."]
    if project not in projects:
        return [
            f"“{project}” is not a use the consent of {label} covers; it covers: "
            f"{', '.join(projects)}."
        ]
    return []


def consent_projects(consent: ConsentRecord | None) -> list[str]:
    """The projects of a consent's uses, once each, in their order (reads ``consent.uses``)."""
    if consent is None:
        return []
    return list(dict.fromkeys(use.project for use in consent.uses.all()))


@transaction.atomic
def reference_copies_notify_withdrawn(
    *, asset_ids: Iterable[int], reason: str
) -> list[ProducerNotice]:
    """Tell every producer who copied a reference of ``asset_ids`` to stop using it.

    For whoever withdraws assets (a revocation, an expiry, an asset withdrawn): call it once the
    assets may no longer be used, with ``reason`` in words a producer understands ("The person
    revoked their consent on 2026-05-01."). Each producer with copies of those assets not yet
    told about gets one ``ProducerNotice`` (shown on the references page and in the admin until
    acknowledged) listing each asset once per project (person's display name, ``asset://<Id>``,
    project) with the reason, and one email with the same list when they have an address (a
    ``NoticeEmail`` row, sent by ``assets.tasks.send_notice_email`` after commit). An audit
    event records each notice.

    Safe to call again (a retried task): copies already in a notice are not told twice; the
    copies are locked first, so two concurrent calls do not both tell. Returns the new notices.
    """
    ids = list(asset_ids)
    locked = list(
        ReferenceCopy.objects.filter(asset_id__in=ids)
        .select_for_update()
        .values_list("pk", flat=True)
    )
    untold = (
        ReferenceCopy.objects.filter(pk__in=locked, notices__isnull=True)
        .select_related("user")
        .order_by("user_id", "copied_at", "pk")
    )
    notices = []
    for user, copies in groupby(untold, key=attrgetter("user")):
        notice = ProducerNotice.objects.create(user=user, reason=reason)
        notice.copies.set(list(copies))
        notice = ProducerNotice.objects.prefetch_related(
            Prefetch("copies", ReferenceCopy.objects.select_related("asset__group__person"))
        ).get(pk=notice.pk)
        lines = notice.lines()
        audit_record(
            action="producer_notice.created",
            obj=notice,
            actor_label="system",
            detail={"producer": user.pk, "reason": reason, "references": lines},
        )
        if user.email:
            _queue_notice_email(notice, lines)
        else:
            logger.warning("producer %s has no email address: notice %s only", user.pk, notice.pk)
        notices.append(notice)
    return notices


def _queue_notice_email(notice: ProducerNotice, lines: list[dict[str, str]]) -> NoticeEmail:
    from assets.tasks import send_notice_email

    count = len(lines)
    subject = f"Stop using {count} likeness reference{'s' if count != 1 else ''} you copied"
    body = render_to_string(
        "assets/email/references_withdrawn.txt",
        {
            "user": notice.user,
            "reason": notice.reason,
            "lines": lines,
            "references_url": settings.PORTAL_PUBLIC_URL.rstrip("/") + reverse("references:list"),
            "organisation": settings.PORTAL_ORGANISATION_NAME,
        },
    )
    email = NoticeEmail.objects.create(
        notice=notice, to=notice.user.email, subject=subject, body=body
    )
    send_notice_email.delay_on_commit(email.pk)
    return email


def notice_email_send(*, notice_email_id: int) -> NoticeEmail:
    """Send a queued notice email, recording the outcome (and an audit event) on the row.

    Idempotent: a sent or failed email is left alone; the row is locked while sending, so two
    workers never both send it. A failure counts an attempt and keeps the error; the row stays
    queued (the task tries again later) until ``MAX_NOTICE_EMAIL_ATTEMPTS``, then it is failed.
    """
    with transaction.atomic():
        email = NoticeEmail.objects.select_for_update().get(pk=notice_email_id)
        if email.status != NoticeEmailStatus.QUEUED:
            return email
        email.attempts += 1
        try:
            EmailMessage(subject=email.subject, body=email.body, to=[email.to]).send()
        except Exception as exc:  # SMTP, DNS, TLS: every failure is recorded on the row
            email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if email.attempts >= MAX_NOTICE_EMAIL_ATTEMPTS:
                email.status = NoticeEmailStatus.FAILED
            logger.warning("notice email %s failed (attempt %d): %s", email.pk, email.attempts, exc)
        else:
            email.status = NoticeEmailStatus.SENT
            email.sent_at = timezone.now()
            email.last_error = ""
        email.save(update_fields=["attempts", "last_error", "status", "sent_at", "updated_at"])
        if email.status != NoticeEmailStatus.QUEUED:
            audit_record(
                action=f"notice_email.{email.status}",
                obj=email,
                actor_label="celery",
                detail={"notice": email.notice_id, "attempts": email.attempts},
            )
    return email


def producer_notice_acknowledge(*, notice: ProducerNotice, user: Any) -> bool:
    """The producer read ``notice`` (their own): it leaves their pages. False when it was
    acknowledged already, or is someone else's."""
    with transaction.atomic():
        acknowledged = ProducerNotice.objects.filter(
            pk=notice.pk, user=user, acknowledged_at__isnull=True
        ).update(acknowledged_at=timezone.now())
        if acknowledged:
            audit_record(action="producer_notice.acknowledged", obj=notice, actor=user)
    return bool(acknowledged)
