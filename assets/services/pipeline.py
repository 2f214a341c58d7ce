"""Likeness assets through their upstream life: upload, submit, follow, retry, sweep.

Every external effect is a row (``Asset``): its status, attempts, last error and when its next
step is due (``next_attempt_at``). Tasks only name a row; the functions here claim it with a
conditional UPDATE, call the upstream, and record the outcome with another conditional UPDATE,
so any of them may run twice, or late, without harm::

    asset_create ─► queued ─(asset_submit claims)─► uploading ─CreateAsset─► processing
                      ▲ │  transient error (429, 5xx, timeout): queued again, retried later
                      │ └─ permanent error, or the consent gate closed meanwhile: failed
                      └── lease expired, the worker died: assets_sweep queues it again
    processing ─(assets_poll: the group's listing, GetAsset)─► active | failed

No twins: the upstream refuses a second asset with the same Name in a group (reference G6), and
every row has a Name of its own (``upstream_name``); the client's ``create_asset_reconciled``
settles a create whose answer was lost, and every attempt after the first looks the Name up
before it creates anything. Each status change writes its ``asset.<what>`` audit event in the
same transaction (``common.settle``).
"""

from __future__ import annotations

import datetime
import logging
import os
from contextlib import AbstractContextManager
from itertools import groupby
from operator import attrgetter
from typing import Any, BinaryIO, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from assets.media import (
    LocationNotRemovable,
    MediaRejected,
    face_precheck,
    sniff_kind,
    strip_location,
    validate_media,
)
from assets.models import Asset, AssetGroup, AssetKind
from assets.services.common import CLAIM_SLACK, POLL_BATCH, WORKER, retry_delay, settle
from assets.services.gate import (
    consent_for_upload,
    consent_refusals,
    group_refusals,
    upload_group_for,
)
from assets.services.proof import is_liveness
from assets.services.withdrawals import delete_upstream_audited
from assets.signing import signed_file_url
from audit.services import audit_record
from consent.models import ConsentRecord, Person
from portal.leases import renewed_lease
from portal.private_files import name_mismatch
from portal.queue import enqueue_after_commit
from upstream import (
    AmbiguousWrite,
    AnyfastClient,
    AssetNotFound,
    InvalidRequest,
    PermanentUpstreamError,
    TransientUpstreamError,
    UpstreamAsset,
    UpstreamAssetType,
    UpstreamError,
    client_or_default,
    explain_asset_error,
    upstream_outcome,
)

logger = logging.getLogger(__name__)

ASSET_TYPES = {
    AssetKind.IMAGE: UpstreamAssetType.IMAGE,
    AssetKind.VIDEO: UpstreamAssetType.VIDEO,
    AssetKind.AUDIO: UpstreamAssetType.AUDIO,
}

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
    enqueue_after_commit("assets.tasks.submit_asset", asset_id, countdown=countdown)


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
        settle(
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
    with client_or_default(client) as upstream, _upload_lease_renewed(asset):
        try:
            upstream_id = _create_once(upstream, asset)
        except (TransientUpstreamError, AmbiguousWrite) as error:
            _requeue(asset, error)
            return
        except PermanentUpstreamError as error:
            settle(
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
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + CLAIM_SLACK)
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


def _upload_lease_renewed(asset: Asset) -> AbstractContextManager[None]:
    """The claim's lease, renewed while this worker uploads (a dead one's lapses in a lease)."""
    return renewed_lease(
        _claimed(asset),
        lease_end=cast(datetime.datetime, asset.next_attempt_at),
        lease_seconds=settings.ASSET_UPLOAD_LEASE_SECONDS,
        max_seconds=settings.CELERY_TASK_TIME_LIMIT,
    )


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
    delay = retry_delay(asset.attempts, error)
    if settle(
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
    accepted = settle(
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
        outcome = delete_upstream_audited(upstream, upstream_id, asset=asset)
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
    with client_or_default(client) as upstream:
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
                        settle(rows, asset, "upstream_error", changes, detail=outcome)
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
    within the shared rate limits; an asset the listing does not show is asked for on its own,
    so that one the upstream really does not know ends as ``AssetNotFound``: by a listing of the
    group scoped to its Name for a LivenessFace asset (GetAsset may not see those, and answers
    NotFound for assets still Active: docs/upstream.md G10), by GetAsset for the others.
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
        if state is None and is_liveness(group):
            try:
                state = _listed_by_name(upstream, group, asset)
            except UpstreamError as error:
                states[asset.pk] = error
                continue
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


def _listed_by_name(upstream: AnyfastClient, group: AssetGroup, asset: Asset) -> UpstreamAsset:
    """The asset as ListAssets of its group, scoped to its Name, shows it; ``AssetNotFound``
    when it does not (never GetAsset alone: G10)."""
    upstream_id = str(asset.upstream_id)
    listed = upstream.iter_assets(
        group_type=group.group_type, group_ids=[group.group_id], name=asset.upstream_name
    )
    for state in listed:
        if state.id == upstream_id:
            return state
    raise AssetNotFound(
        f"ListAssets of group {group.group_id} does not list {upstream_id}",
        action="ListAssets",
        code="NotFound.asset_id",
    )


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
    settle(rows, asset, "refreshed" if refreshed else status, changes, detail=outcome, actor=actor)


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
    with client_or_default(client) as upstream:
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
            if settle(
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
        with client_or_default(client) as upstream:
            outcome = delete_upstream_audited(upstream, asset.upstream_id, asset=asset, actor=actor)
    try:
        with transaction.atomic():
            if settle(
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


# --- The sweeper ------------------------------------------------------------------------------


def assets_sweep(*, client: AnyfastClient | None = None) -> dict[str, int]:
    """What beat runs every ``ASSET_SWEEP_INTERVAL_SECONDS``; counts of what it did.

    * ``requeued``: uploads whose worker's lease ran out (killed mid-upload) are queued again;
    * ``resent``: queued uploads still unclaimed ``ASSET_RESEND_AFTER_SECONDS`` after they were
      due (their task message was lost: a broker outage, a dead worker) get a new task;
    * ``polled``: the processing assets due for a check are checked (``assets_poll``).
    """
    now = timezone.now()
    requeued = 0
    for asset in Asset.objects.upload_lease_expired(now).select_related("group"):
        with transaction.atomic():
            if settle(
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
    resend_after = datetime.timedelta(seconds=settings.ASSET_RESEND_AFTER_SECONDS)
    stale = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now - resend_after)
    for asset_id in Asset.objects.filter(stale, status=Asset.Status.QUEUED).values_list(
        "pk", flat=True
    )[:POLL_BATCH]:
        with transaction.atomic():
            # Due still, but not sent again before another ASSET_RESEND_AFTER_SECONDS.
            if Asset.objects.filter(stale, pk=asset_id, status=Asset.Status.QUEUED).update(
                next_attempt_at=now
            ):
                resent += 1
                _enqueue_submit(asset_id)
    polled = assets_poll(client=client)
    return {"requeued": requeued, "resent": resent, "polled": polled}
