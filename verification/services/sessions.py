"""Upstream sessions of an invitation: started just in time, confirmed only by the upstream.

A callback only records what the person's browser carried and asks for a confirmation; only
GetVisualValidateResult's GroupId verifies anyone (a forged ``resultCode=10000`` changes nothing).
Upstream calls are made outside database transactions (they can take seconds, and on SQLite a
transaction holds the whole database's write lock). Status changes are conditional UPDATEs with
their audit event; BytedTokens appear in events by their last six characters only.
"""

from __future__ import annotations

import datetime
import logging
import time
import uuid
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from assets.services.gate import asset_group_record_liveness
from audit.services import acting_user, audit_record, audited_update
from consent.models import ConsentRecord, Language
from portal.queue import enqueue_after_commit
from upstream import (
    AnyfastClient,
    LocalRateLimitExceeded,
    RateLimited,
    UpstreamError,
    upstream_outcome,
)
from upstream.errors import mask_byted_token
from upstream.ratelimit import budgets_from_settings
from verification.models import (
    OPEN_VERIFICATION_STATUSES,
    PENDING_UPSTREAM_STATUSES,
    UpstreamPurpose,
    UpstreamSession,
    UpstreamStatus,
    VerificationSession,
    VerificationStatus,
)
from verification.services.invitations import (
    BROWSER_CALLBACK,
    CALLBACK_PARAMS,
    FAILED_ON_PAGE_EXPLANATION,
    MAX_CALLBACK_VALUE,
    NEVER_COMPLETED_EXPLANATION,
    PERSON,
    SESSION_GONE_EXPLANATION,
    SUCCESS_RESULT_CODE,
    WORKER,
    AttemptsExhausted,
    InvitationUnavailable,
    UpstreamStartFailed,
    User,
    _end_invitation_if_out_of_attempts,
    _expire_if_overdue,
    _mark_opened,
    callback_url,
    h5_link_with_language,
    invitation_attempts_left,
)

logger = logging.getLogger(__name__)

CONFIRM_TASK = "verification.tasks.confirm_upstream_session"

# --- Upstream sessions ------------------------------------------------------------------------


def poll_interval(verification: UpstreamSession, now: datetime.datetime) -> float:
    """Seconds until ``verification`` should be asked for its GroupId again.

    People complete within the H5 link's 120 s (plus the time the page stays open), so a session
    is polled every 5 s until a minute after its link expired: with beat sweeping every 10 s, a
    person who completes and closes the phone is confirmed within about 15 s. Later it can only
    be a slow or lost confirmation: every 30 s, then every 2 minutes until the token expires. A
    callback claiming success is checked every 2 s for its first minute; one claiming a failure
    every minute (a group may still appear, as only the upstream decides).
    """
    if verification.callback_received_at is not None:
        since_callback = (now - verification.callback_received_at).total_seconds()
        if verification.callback_result_code != SUCCESS_RESULT_CODE:
            return 60.0
        if since_callback < 60:
            return 2.0
    link_expires = verification.h5_link_expires_at or verification.created_at
    if now < link_expires + datetime.timedelta(seconds=60):
        return 5.0
    if now < verification.created_at + datetime.timedelta(minutes=10):
        return 30.0
    return 120.0


def upstream_session_start(
    *,
    invitation: VerificationSession,
    purpose: str,
    language: str | None = None,
    created_by: User = None,
    client: AnyfastClient | None = None,
) -> UpstreamSession:
    """Mint an upstream session for ``invitation``, now that the person is there.

    ``purpose`` is ``phone`` (the person pressed Start: it counts as an attempt) or ``desk``
    (staff show its H5 link as a QR). The H5 link returned in ``h5_link`` carries ``lng`` in
    ``language`` (a ``Language`` value; the person's own by default) and works once, for
    ``ANYFAST_H5_LINK_TTL`` seconds.

    Refused (``InvitationUnavailable``) when the invitation ended, and (``AttemptsExhausted``)
    when a phone start would exceed ``VERIFICATION_MAX_ATTEMPTS``. When the upstream refuses,
    the failed attempt is recorded and ``UpstreamStartFailed`` raised.

    The limit is exact under concurrency: a phone start locks the invitation's row (``SELECT …
    FOR UPDATE``) before it counts the attempts and keeps it until its own session is saved, so
    simultaneous presses of Start wait for each other (one person, one phone: the wait is one
    upstream call). The lock needs a database that has one (PostgreSQL); on SQLite, the laptop
    default, two simultaneous presses may still make one attempt more than the limit.
    """
    if purpose not in UpstreamPurpose.values:
        raise ValueError(f"purpose must be one of {UpstreamPurpose.values}")
    owns_client = client is None
    client = client or AnyfastClient()
    locking = purpose == UpstreamPurpose.PHONE and connection.features.has_select_for_update
    try:
        with transaction.atomic() if locking else nullcontext():
            if locking:
                VerificationSession.objects.select_for_update().get(pk=invitation.pk)
                invitation.refresh_from_db()
            row, failure = _start(
                invitation=invitation,
                purpose=purpose,
                language=language,
                created_by=created_by,
                client=client,
            )
    finally:
        if owns_client:
            client.close()
    if failure is not None:
        raise UpstreamStartFailed(row) from failure
    return row


def _start(
    *,
    invitation: VerificationSession,
    purpose: str,
    language: str | None,
    created_by: User,
    client: AnyfastClient,
) -> tuple[UpstreamSession, UpstreamError | None]:
    """``upstream_session_start``'s work: the row, and the upstream's refusal (recorded) if any."""
    now = timezone.now()
    _expire_if_overdue(invitation, now)
    if not invitation.is_open:
        raise InvitationUnavailable(
            f"This invitation is {invitation.get_status_display().lower()}.", invitation
        )
    consent_id = invitation.consent_id
    backing = ConsentRecord.objects.backing_verification()
    if consent_id is None or not backing.filter(pk=consent_id).exists():
        # Its consent ended since (its end date passed; ending it by review cancels invitations),
        # or awaits the person's electronic signature still.
        raise InvitationUnavailable(
            "The consent this invitation backs is not in force: no verification now.", invitation
        )
    if purpose == UpstreamPurpose.PHONE and invitation_attempts_left(invitation) <= 0:
        raise AttemptsExhausted("Every verification attempt of this invitation was used.")
    language = language or invitation.person.preferred_language
    if language not in Language.values:
        language = Language.ENGLISH
    public_id = uuid.uuid4()
    row = UpstreamSession(
        public_id=public_id,
        invitation=invitation,
        purpose=purpose,
        language=language,
        api_key_fingerprint=client.key_fingerprint,
        created_by=acting_user(created_by),
    )
    # Phone starts are the person's (pressing Start); desk ones the staff member's.
    actor_label = PERSON if purpose == UpstreamPurpose.PHONE else ""
    try:
        # The person waits on the page: a hung upstream costs them seconds, not minutes.
        with client.within(settings.VERIFICATION_START_TIMEOUT_SECONDS):
            started = client.create_visual_validate_session(callback_url(public_id))
    except UpstreamError as error:
        row.status = UpstreamStatus.FAILED
        row.ended_at = timezone.now()
        _set_error(row, error)
        with transaction.atomic():
            row.save()
            audit_record(
                action="verification.start_failed",
                obj=row,
                actor=created_by,
                actor_label=actor_label,
                person_id=invitation.person_id,
                detail={
                    "purpose": purpose,
                    **upstream_outcome("CreateVisualValidateSession", error),
                },
            )
        logger.warning(
            "verification start failed for invitation %s: %s", invitation.pk, row.last_error
        )
        return row, error
    now = timezone.now()
    row.byted_token = started.byted_token
    row.h5_link = h5_link_with_language(started.h5_link, language)
    row.h5_link_expires_at = now + datetime.timedelta(seconds=settings.ANYFAST_H5_LINK_TTL)
    row.token_expires_at = now + datetime.timedelta(seconds=settings.ANYFAST_TOKEN_TTL)
    row.created_at = now  # poll_interval reads it before the row is saved
    row.next_poll_at = now + datetime.timedelta(seconds=poll_interval(row, now))
    with transaction.atomic():
        row.save()
        audit_record(
            action="verification.started",
            obj=row,
            actor=created_by,
            actor_label=actor_label,
            person_id=invitation.person_id,
            after={"status": row.status},
            detail={
                "purpose": purpose,
                "language": language,
                "byted_token": f"…{started.byted_token[-6:]}",
                "api_key_fingerprint": row.api_key_fingerprint,
                **upstream_outcome("CreateVisualValidateSession"),
            },
        )
        _mark_opened(invitation, now, actor=created_by)
    return row, None


@dataclass(frozen=True)
class CallbackOutcome:
    """What a callback did: ``recorded`` (first visit: parameters kept, confirmation queued),
    ``replayed`` (that session's callback was already recorded: nothing changed) or ``unknown``
    (no such session, or another session's BytedToken: nothing changed)."""

    kind: str
    verification: UpstreamSession | None = None


def _callback_params(params: Mapping[str, str]) -> dict[str, str]:
    return {key: str(params[key])[:MAX_CALLBACK_VALUE] for key in CALLBACK_PARAMS if key in params}


@transaction.atomic
def upstream_session_record_callback(
    *, public_id: uuid.UUID | str, params: Mapping[str, str]
) -> CallbackOutcome:
    """The person's browser came back from the H5 page to the session's CallbackURL.

    The first visit keeps the known parameters (``bytedToken``, ``resultCode``, …) and queues a
    confirmation at once; nothing else changes, whatever ``resultCode`` says. A visit without
    this session's ``bytedToken`` is ``unknown`` and records nothing: the session's id is no
    secret (it is on the upstream-session page), the token only the person's browser holds.
    A genuine page that sent no token loses nothing: the poller confirms the session anyway.
    """
    verification = (
        UpstreamSession.objects.select_related("invitation").filter(public_id=public_id).first()
    )
    if verification is None or verification.byted_token is None:
        return CallbackOutcome("unknown")
    token = params.get("bytedToken") or ""
    if not constant_time_compare(token, verification.byted_token):
        return CallbackOutcome("unknown")
    now = timezone.now()
    first = UpstreamSession.objects.filter(
        pk=verification.pk, callback_received_at__isnull=True
    ).update(callback_params=_callback_params(params), callback_received_at=now, updated_at=now)
    if not first:
        verification.refresh_from_db()
        return CallbackOutcome("replayed", verification)
    before, person_id = verification.status, verification.invitation.person_id
    UpstreamSession.objects.filter(pk=verification.pk, status=UpstreamStatus.CREATED).update(
        status=UpstreamStatus.CALLBACK_RECEIVED, next_poll_at=now
    )
    verification.refresh_from_db()
    audit_record(
        action="verification.callback",
        obj=verification,
        actor_label=BROWSER_CALLBACK,
        person_id=person_id,
        before={"status": before},
        after={"status": verification.status},
        # What the browser claimed (only the upstream's result decides); the token stays out.
        detail={k: v for k, v in verification.callback_params.items() if k != "bytedToken"},
    )
    if verification.is_pending:
        enqueue_after_commit(CONFIRM_TASK, verification.pk)
    return CallbackOutcome("recorded", verification)


def _set_error(row: UpstreamSession, error: UpstreamError) -> None:
    row.last_error_code = error.code[:100]
    row.last_error = error.message
    row.last_error_explanation = error.explanation


def is_token_gone(error: UpstreamError) -> bool:
    """Whether ``error`` says the BytedToken is expired or unknown (``NotFound.BytedToken`` 404,
    ``InvalidParameter.BytedToken`` 400; the code may be masked, ``***.BytedToken``)."""
    return error.code.rsplit(".", 1)[-1].lower() == "bytedtoken"


def _claim_poll(verification: UpstreamSession, now: datetime.datetime, *, force: bool) -> bool:
    """Take this poll: count it and move ``next_poll_at`` on, unless another worker has it.

    Without ``force`` only a due session is taken (beat's sweep); ``force`` (the confirmation a
    callback asks for, and its retries) takes it whenever it was not polled within the last
    second, so that a sweep and a task never both ask at once.
    """
    interval = datetime.timedelta(seconds=poll_interval(verification, now))
    rows = UpstreamSession.objects.filter(pk=verification.pk, status__in=PENDING_UPSTREAM_STATUSES)
    if force:
        rows = rows.exclude(last_polled_at__gt=now - datetime.timedelta(seconds=1))
    else:
        rows = rows.filter(next_poll_at__lte=now)
    return bool(
        rows.update(
            attempts=F("attempts") + 1,
            last_polled_at=now,
            next_poll_at=now + interval,
            updated_at=now,
        )
    )


def upstream_session_confirm(
    *,
    upstream_session_id: int,
    client: AnyfastClient | None = None,
    force: bool = False,
) -> UpstreamSession:
    """Ask the upstream for the session's GroupId (GetVisualValidateResult) and act on it.

    - A GroupId: the session is confirmed and the person's LivenessFace ``AssetGroup`` is
      created (with the fingerprint of the key that created the session) in the same
      transaction, and the invitation becomes verified. Only the first worker wins.
    - An empty GroupId: still pending, polled again at ``next_poll_at``; once the token's
      lifetime has passed the session ends: ``failed`` when its callback reported a failure,
      else ``expired``.
    - An expired or unknown BytedToken (``is_token_gone``): the session ends the same way; it is
      not a failure of the portal.
    - Any other error is recorded on the row (the upstream's words and the explanation) and the
      session polled again later.

    Does nothing when the session is no longer pending, or not due (``force`` skips the due
    check, for the confirmation a callback asks for). Returns the row as it now is.
    """
    verification = UpstreamSession.objects.select_related("invitation").get(pk=upstream_session_id)
    now = timezone.now()
    if not verification.is_pending or not _claim_poll(verification, now, force=force):
        return verification
    owns_client = client is None
    client = client or AnyfastClient()
    try:
        # Each poll is bounded on its own (and by what is left of a sweep's budget): a hung call
        # never holds up the people behind it.
        with client.within(settings.VERIFICATION_POLL_CALL_SECONDS):
            result = client.get_visual_validate_result(verification.byted_token or "")
    except UpstreamError as error:
        if is_token_gone(error):
            _end(verification, error=error, explanation=SESSION_GONE_EXPLANATION)
        else:
            _record_error(verification, error)
            if isinstance(error, RateLimited | LocalRateLimitExceeded):
                raise  # the sweep stops for this round
        verification.refresh_from_db()
        return verification
    finally:
        if owns_client:
            client.close()
    if result.is_complete:
        _complete(verification, result.group_id)
    elif verification.token_expires_at and timezone.now() >= verification.token_expires_at:
        _end(verification, error=None, explanation=NEVER_COMPLETED_EXPLANATION)
    verification.refresh_from_db()
    return verification


def _record_error(verification: UpstreamSession, error: UpstreamError) -> None:
    """Keep the error on the pending session; an event when it differs from the last one (a
    session polled through an outage would otherwise write one every few seconds)."""
    changes = {
        "last_error_code": error.code[:100],
        "last_error": mask_byted_token(error.message, verification.byted_token),
        "last_error_explanation": error.explanation,
        "updated_at": timezone.now(),
    }
    rows = UpstreamSession.objects.filter(pk=verification.pk, status__in=PENDING_UPSTREAM_STATUSES)
    if changes["last_error_code"] == verification.last_error_code:
        rows.update(**changes)
        return
    audited_update(
        rows,
        changes,
        obj=verification,
        action="verification.upstream_error",
        person_id=verification.invitation.person_id,
        recorded=("last_error_code",),
        actor_label=WORKER,
        detail=upstream_outcome("GetVisualValidateResult", error, token=verification.byted_token),
    )


@transaction.atomic
def _complete(verification: UpstreamSession, group_id: str) -> None:
    now = timezone.now()
    won = UpstreamSession.objects.filter(
        pk=verification.pk, status__in=PENDING_UPSTREAM_STATUSES
    ).update(
        status=UpstreamStatus.CONFIRMED,
        group_id=group_id,
        confirmed_at=now,
        ended_at=now,
        next_poll_at=None,
        last_error_code="",
        last_error="",
        last_error_explanation="",
        updated_at=now,
    )
    if not won:
        return
    invitation = verification.invitation
    audit_record(
        action="verification.confirmed",
        obj=verification,
        actor_label=WORKER,
        person_id=invitation.person_id,
        before={"status": verification.status},
        after={"status": UpstreamStatus.CONFIRMED, "group_id": group_id},
        detail=upstream_outcome("GetVisualValidateResult"),
    )
    asset_group_record_liveness(
        person_id=invitation.person_id,
        group_id=group_id,
        api_key_fingerprint=verification.api_key_fingerprint,
        upstream_session_id=verification.pk,
    )
    # An invitation that expired by time meanwhile still records the verification that happened.
    now = timezone.now()  # after the group, so that a timeline shows them in that order
    audited_update(
        VerificationSession.objects.filter(
            pk=invitation.pk,
            status__in=[*OPEN_VERIFICATION_STATUSES, VerificationStatus.EXPIRED],
        ),
        {
            "status": VerificationStatus.VERIFIED,
            "verified_at": now,
            "ended_at": now,
            "updated_at": now,
        },
        obj=invitation,
        action="invitation.verified",
        person_id=invitation.person_id,
        actor_label=WORKER,
        detail={"group_id": group_id},
    )


@transaction.atomic
def _end(verification: UpstreamSession, *, error: UpstreamError | None, explanation: str) -> None:
    """End a pending session without a group: ``failed`` when its callback reported a failure,
    else ``expired``. The upstream's words are kept: the error's, or the callback's code."""
    verification.refresh_from_db()
    failed_on_page = (
        verification.callback_received_at is not None
        and verification.callback_result_code != SUCCESS_RESULT_CODE
    )
    if failed_on_page:
        status = UpstreamStatus.FAILED
        code = f"resultCode={verification.callback_result_code or '(none)'}"
        message = "The verification page reported a failure" + (
            f"; then: {mask_byted_token(error.message, verification.byted_token)}" if error else "."
        )
        explanation = FAILED_ON_PAGE_EXPLANATION
    else:
        status = UpstreamStatus.EXPIRED
        code = error.code[:100] if error else ""
        message = (
            mask_byted_token(error.message, verification.byted_token)
            if error
            else "GroupId still empty when the token expired."
        )
    now = timezone.now()
    ended = audited_update(
        UpstreamSession.objects.filter(pk=verification.pk, status__in=PENDING_UPSTREAM_STATUSES),
        {
            "status": status,
            "ended_at": now,
            "next_poll_at": None,
            "last_error_code": code,
            "last_error": message,
            "last_error_explanation": explanation,
            "updated_at": now,
        },
        obj=verification,
        action=f"verification.{status}",
        person_id=verification.invitation.person_id,
        recorded=("status", "last_error_code"),
        actor_label=WORKER,
        detail=upstream_outcome("GetVisualValidateResult", error, token=verification.byted_token)
        if error
        else {"upstream": "GetVisualValidateResult ok (no GroupId before the token expired)"},
    )
    if ended:
        _end_invitation_if_out_of_attempts(verification.invitation_id, now)


def upstream_session_poll_due(
    *,
    max_sessions: int | None = None,
    time_budget: float | None = None,
    client: AnyfastClient | None = None,
) -> int:
    """Confirm the pending sessions whose ``next_poll_at`` has come, oldest first.

    The calls go through the client's limiter, which holds GetVisualValidateResult to its budget
    (3/s) across the deployment, callbacks' confirmations included; so that a sweep never runs
    into the next one, it takes at most two thirds of that budget over ``time_budget`` seconds
    (``VERIFICATION_POLL_SWEEP_SECONDS``) and stops once the time is used or the upstream
    pushes back (rate limited). The budget bounds each call too: its timeouts are cut to what is
    left of it (``AnyfastClient.within``), so a hung call cannot overrun the sweep. Returns how
    many sessions it polled.
    """
    time_budget = time_budget or settings.VERIFICATION_POLL_SWEEP_SECONDS
    if max_sessions is None:
        per_second = budgets_from_settings()["GetVisualValidateResult"].per_second
        max_sessions = max(1, int(per_second * time_budget * 2 / 3))
    deadline = time.monotonic() + time_budget
    ids = list(UpstreamSession.objects.due_for_poll().values_list("pk", flat=True)[:max_sessions])
    owns_client = client is None
    client = client or AnyfastClient()
    polled = 0
    try:
        for pk in ids:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                with client.within(remaining):
                    upstream_session_confirm(upstream_session_id=pk, client=client)
            except (RateLimited, LocalRateLimitExceeded) as error:
                logger.info("verification poll sweep stops: %s", error)
                break
            polled += 1
    finally:
        if owns_client:
            client.close()
    return polled
