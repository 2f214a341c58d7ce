"""Workflows of people: their consent's lifecycle and their real-person verification.

Every function is keyword-only and atomic, and changes a status only with a conditional
``UPDATE ... WHERE status IN (...)``, so that two workers (or a worker and beat, or two browser
tabs) never both win a transition. Side effects leave after commit (Celery tasks enqueued with
``delay_on_commit``). Each change (of a consent record, an invitation, an upstream session, an
email) writes its audit event in the same transaction, with the upstream's answer when one
caused it (``assets.services.upstream_outcome``); BytedTokens appear there by their last six
characters only.

Consent lifecycle (``CONSENT_TRANSITIONS`` is the one table of it)::

    draft ─submit→ pending_review ─approve→ approved ─revoke→ revoked
                                  └reject→ rejected   ├expire→ expired (at its end date)
                                                      └supersede→ superseded (a newer version
                                                                    approved in its place)

Verification: the upstream decides, never the person's browser: a callback only records what it
carried and asks for a confirmation; only GetVisualValidateResult's GroupId verifies anyone (a
forged ``resultCode=10000`` changes nothing). Upstream calls are made outside database
transactions (they can take seconds, and on SQLite a transaction holds the whole database's write
lock).
"""

from __future__ import annotations

import datetime
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from assets.models import WithdrawalReason
from assets.services import (
    asset_group_record_liveness,
    assets_reassign_consent,
    upstream_outcome,
    withdrawal_start,
)
from assets.upstream import AnyfastClient, LocalRateLimitExceeded, RateLimited, UpstreamError
from assets.upstream.errors import EMPTY_GROUP_ID_EXPLANATION
from audit.services import audit_record, audited_update, snapshot
from consent.models import (
    OPEN_VERIFICATION_STATUSES,
    PENDING_UPSTREAM_STATUSES,
    ConsentRecord,
    ConsentStatus,
    ConsentUse,
    EmailStatus,
    Language,
    OutboundEmail,
    Person,
    RevocationChannel,
    UpstreamPurpose,
    UpstreamStatus,
    UpstreamVerification,
    VerificationSession,
    VerificationStatus,
    django_language,
)

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser | None

SUCCESS_RESULT_CODE = "10000"
# What the portal keeps of a callback's query (docs/upstream.md §6.1); anything else is dropped.
CALLBACK_PARAMS = ("bytedToken", "resultCode", "algorithmBaseRespCode", "reqMeasureInfoValue",
                   "verify_type")  # fmt: skip
MAX_CALLBACK_VALUE = 200
# Consent that cannot back a verification any more.
CLOSED_CONSENT = (
    ConsentStatus.REJECTED,
    ConsentStatus.REVOKED,
    ConsentStatus.EXPIRED,
    ConsentStatus.SUPERSEDED,
)
MAX_EMAIL_ATTEMPTS = 5
# Who acted, in audit events, when no staff member did.
PERSON = "person (invitation link)"
BROWSER_CALLBACK = "person's browser (callback)"
WORKER = "worker"
SCHEDULER = "scheduler"

SESSION_GONE_EXPLANATION = (
    "The upstream no longer knows this session's BytedToken: it expired (its lifetime is 30 "
    "minutes, perhaps only 120 seconds) or belongs to another API key. This attempt is over; "
    "the person can start again from the same invitation."
)
FAILED_ON_PAGE_EXPLANATION = (
    "The upstream's verification page reported a failure and no group was made (liveness can "
    "fail on lighting or angle). The person can try again from the same invitation: a retry "
    "is a new upstream session."
)
NEVER_COMPLETED_EXPLANATION = (
    "The person did not finish verification before the BytedToken expired. "
    + EMPTY_GROUP_ID_EXPLANATION.split(":")[0]
    + ": the person can start again from the same invitation."
)


# --- Refusals ---------------------------------------------------------------------------------


class VerificationRefused(Exception):
    """A step the rules do not allow; ``str()`` says why, in words fit for staff."""


class InvitationUnavailable(VerificationRefused):
    """The invitation cannot be used (ended, or unknown); ``invitation`` is None when unknown."""

    def __init__(self, message: str, invitation: VerificationSession | None = None) -> None:
        super().__init__(message)
        self.invitation = invitation


class AttemptsExhausted(VerificationRefused):
    """The person used every attempt (``VERIFICATION_MAX_ATTEMPTS``) this invitation allows."""


class UpstreamStartFailed(VerificationRefused):
    """CreateVisualValidateSession failed; ``verification`` is the failed row kept on record,
    ``explanation`` says what it means (for staff; the person gets a plain apology)."""

    def __init__(self, verification: UpstreamVerification) -> None:
        super().__init__(verification.last_error)
        self.verification = verification
        self.explanation = verification.last_error_explanation


# --- Links ------------------------------------------------------------------------------------


def invitation_url(invitation: VerificationSession) -> str:
    """The link the person receives (email, QR), on the portal's public address."""
    path = reverse("verify:invitation", args=[invitation.invitation_token])
    return settings.PORTAL_PUBLIC_URL + path


def code_entry_url() -> str:
    """Where a person types their short code."""
    return settings.PORTAL_PUBLIC_URL + reverse("verify:code")


def callback_url(public_id: uuid.UUID) -> str:
    """The CallbackURL of one upstream session: it names the session (never the invitation)."""
    return settings.PORTAL_PUBLIC_URL + reverse("verify:callback", args=[public_id])


def h5_link_with_language(link: str, language: str) -> str:
    """``link`` with its ``lng`` set to ``language`` (``en``, ``zh`` or ``zh-Hant``; the H5 page
    defaults to Chinese without it, G15); every other parameter kept as it was."""
    parts = urlsplit(link)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True)]
    query = [(key, value) for key, value in query if key != "lng"] + [("lng", language)]
    return urlunsplit(parts._replace(query=urlencode(query)))


# --- Invitations ------------------------------------------------------------------------------


def _user(user: User) -> Any:
    """The user to record as the actor, or None (anonymous: the person themselves)."""
    return user if user is not None and user.is_authenticated else None


def _expire_if_overdue(invitation: VerificationSession, now: datetime.datetime) -> bool:
    """Ends ``invitation`` when its lifetime has passed (and refreshes it); whether it did."""
    if not (invitation.is_open and invitation.expires_at <= now):
        return False
    expired = audited_update(
        VerificationSession.objects.filter(pk=invitation.pk, status__in=OPEN_VERIFICATION_STATUSES),
        {
            "status": VerificationStatus.EXPIRED,
            "ended_at": invitation.expires_at,
            "updated_at": now,
        },
        obj=invitation,
        action="invitation.expired",
        person_id=invitation.person_id,
        actor_label=SCHEDULER,
    )
    invitation.refresh_from_db()
    return bool(expired)


def invitation_expire_overdue(*, now: datetime.datetime | None = None) -> int:
    """Ends every open invitation whose lifetime has passed; how many it ended."""
    now = now or timezone.now()
    overdue = VerificationSession.objects.overdue(now).select_related("person")
    return sum(_expire_if_overdue(invitation, now) for invitation in overdue)


def _create_with_unique_code(**fields: Any) -> VerificationSession:
    """A new invitation; a new code is drawn in the unlikely case one is taken by an open one."""
    for _ in range(5):
        invitation = VerificationSession(**fields)
        try:
            with transaction.atomic():
                invitation.save()
        except IntegrityError as exc:
            if "code" not in str(exc):
                raise
            continue
        return invitation
    raise RuntimeError("could not draw an unused invitation code")


@transaction.atomic
def invitation_create(
    *,
    person: Person,
    consent: ConsentRecord | None,
    created_by: User,
    send_email: bool = True,
) -> VerificationSession:
    """Invite ``person`` to verify, for ``consent``; emails them when they have an address.

    Verification collects biometric data, which needs the person's consent first (BIPA's written
    release, GDPR Art. 9): ``consent`` must be theirs, approved and in force today. Refuses too
    when the person already has an open invitation (resend, cancel or reissue it instead).
    """
    now = timezone.now()
    _refuse_unless_consent_in_force(person=person, consent=consent)
    Person.objects.select_for_update().get(pk=person.pk)  # one invitation at a time per person
    for existing in person.verification_sessions.open():
        _expire_if_overdue(existing, now)
    current = person.verification_sessions.open().first()
    if current is not None:
        raise VerificationRefused(
            f"{person} already has an open invitation (sent "
            f"{timezone.localtime(current.created_at):%Y-%m-%d %H:%M}): resend, cancel or "
            "reissue it instead."
        )
    invitation = _create_with_unique_code(
        person=person, consent=consent, created_by=_user(created_by)
    )
    email = None
    if send_email and person.email:
        email = invitation_send_email(invitation=invitation, created_by=created_by)
    audit_record(
        action="invitation.created",
        obj=invitation,
        actor=created_by,
        person_id=person.pk,
        after=snapshot(invitation, ["status", "consent", "expires_at"]),
        detail={"email_to": email.to if email else None},
    )
    return invitation


def _refuse_unless_consent_in_force(*, person: Person, consent: ConsentRecord | None) -> None:
    if consent is None:
        raise VerificationRefused(
            f"{person} has no approved consent in force: verification collects biometric data, "
            "so record their consent and have it approved first."
        )
    if consent.person_id != person.pk:
        raise VerificationRefused("This consent record is another person's.")
    if not ConsentRecord.objects.in_force().filter(pk=consent.pk).exists():
        raise VerificationRefused(
            f"This consent record is {consent.get_status_display().lower()} and not in force "
            "today: it cannot back a verification."
        )


@transaction.atomic
def invitation_send_email(
    *, invitation: VerificationSession, created_by: User = None
) -> OutboundEmail:
    """Email the invitation (link and short code) in the person's language, after commit.

    Refused when the invitation is no longer open or the person has no email address.
    """
    _expire_if_overdue(invitation, timezone.now())
    if not invitation.is_open:
        raise InvitationUnavailable(
            f"This invitation is {invitation.get_status_display().lower()}: it cannot be sent.",
            invitation,
        )
    person = invitation.person
    if not person.email:
        raise VerificationRefused(
            f"{person} has no email address: show them the QR code or the code instead."
        )
    with translation.override(django_language(person.preferred_language)):
        subject = render_to_string(
            "consent/email/invitation_subject.txt",
            {"person": person, "organisation": settings.PORTAL_ORGANISATION_NAME},
        ).strip()
    email = OutboundEmail.objects.create(
        invitation=invitation,
        to=person.email,
        template="invitation",
        language=person.preferred_language,
        subject=subject[:200],
        created_by=_user(created_by),
    )
    from consent.tasks import send_outbound_email

    send_outbound_email.delay_on_commit(email.pk)
    return email


@transaction.atomic
def invitation_resend(*, invitation: VerificationSession, by: User) -> OutboundEmail:
    """Email an open invitation again (same link, same code)."""
    email = invitation_send_email(invitation=invitation, created_by=by)
    audit_record(
        action="invitation.resent",
        obj=invitation,
        actor=by,
        person_id=invitation.person_id,
        detail={"email_to": email.to},
    )
    return email


@transaction.atomic
def invitation_cancel(*, invitation: VerificationSession, by: User) -> VerificationSession:
    """End an open invitation: its link and code stop working at once.

    Upstream sessions already started keep being confirmed: a person who did verify still gets
    their group recorded, since it exists upstream either way.
    """
    now = timezone.now()
    cancelled = audited_update(
        VerificationSession.objects.filter(pk=invitation.pk, status__in=OPEN_VERIFICATION_STATUSES),
        {
            "status": VerificationStatus.CANCELLED,
            "ended_at": now,
            "ended_by": _user(by),
            "updated_at": now,
        },
        obj=invitation,
        action="invitation.cancelled",
        person_id=invitation.person_id,
        actor=by,
    )
    invitation.refresh_from_db()
    if not cancelled:
        raise InvitationUnavailable(
            f"This invitation is already {invitation.get_status_display().lower()}.", invitation
        )
    return invitation


@transaction.atomic
def invitation_reissue(
    *, invitation: VerificationSession, by: User, send_email: bool = True
) -> VerificationSession:
    """A new invitation (new link, new code, full lifetime and attempts) in place of this one.

    An open invitation is cancelled first. A verified one is not reissued: invite the person
    again if they must verify again.
    """
    if invitation.status == VerificationStatus.VERIFIED:
        raise VerificationRefused("This invitation is verified: there is nothing to reissue.")
    if invitation.replaced_by_id is not None:
        raise VerificationRefused("This invitation was already reissued.")
    if invitation.is_open:
        invitation_cancel(invitation=invitation, by=by)
    new = invitation_create(
        person=invitation.person,
        consent=invitation.consent,
        created_by=by,
        send_email=send_email,
    )
    updated = VerificationSession.objects.filter(pk=invitation.pk, replaced_by__isnull=True).update(
        replaced_by=new, ended_by=_user(by) or F("ended_by")
    )
    if not updated:
        raise VerificationRefused("This invitation was already reissued.")
    invitation.refresh_from_db()
    audit_record(
        action="invitation.reissued",
        obj=invitation,
        actor=by,
        person_id=invitation.person_id,
        detail={"replaced_by": new.pk},
    )
    return new


@transaction.atomic
def invitation_open(*, token: str) -> VerificationSession:
    """The invitation behind a link, marked opened the first time.

    Raises ``InvitationUnavailable`` (without an invitation) for an unknown token. An ended
    invitation is returned as it is: the page says plainly that it ended.
    """
    invitation = (
        VerificationSession.objects.select_related("person", "consent", "created_by")
        .filter(invitation_token=token)
        .first()
    )
    if invitation is None:
        raise InvitationUnavailable("No such invitation.")
    now = timezone.now()
    _expire_if_overdue(invitation, now)
    if _mark_opened(invitation, now, actor=None):
        invitation.refresh_from_db()
    return invitation


def _mark_opened(invitation: VerificationSession, now: datetime.datetime, *, actor: User) -> int:
    """An invited person's invitation is opened (by them, or at the desk by ``actor``)."""
    return audited_update(
        VerificationSession.objects.filter(pk=invitation.pk, status=VerificationStatus.INVITED),
        {"status": VerificationStatus.OPENED, "opened_at": now, "updated_at": now},
        obj=invitation,
        action="invitation.opened",
        person_id=invitation.person_id,
        actor=actor,
        actor_label="" if _user(actor) else PERSON,
    )


def invitation_find_by_code(*, code: str) -> VerificationSession | None:
    """The open invitation with this short code (as stored: see ``normalise_code``), or None."""
    if not code:
        return None
    return VerificationSession.objects.open().filter(code=code).first()


def invitation_attempts_left(invitation: VerificationSession) -> int:
    """How many more upstream sessions the person may start (``VERIFICATION_MAX_ATTEMPTS``)."""
    return max(0, settings.VERIFICATION_MAX_ATTEMPTS - invitation.counted_attempts())


def _end_invitation_if_out_of_attempts(invitation_id: int, now: datetime.datetime) -> None:
    """After an attempt ended: an open invitation with no attempt left and none pending fails."""
    invitation = VerificationSession.objects.get(pk=invitation_id)
    if not invitation.is_open or invitation_attempts_left(invitation) > 0:
        return
    if invitation.upstream_verifications.pending().exists():
        return
    audited_update(
        VerificationSession.objects.filter(pk=invitation_id, status__in=OPEN_VERIFICATION_STATUSES),
        {"status": VerificationStatus.FAILED, "ended_at": now, "updated_at": now},
        obj=invitation,
        action="invitation.failed",
        person_id=invitation.person_id,
        actor_label=WORKER,
    )


# --- Upstream sessions ------------------------------------------------------------------------


def poll_interval(verification: UpstreamVerification, now: datetime.datetime) -> float:
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


def upstream_verification_start(
    *,
    invitation: VerificationSession,
    purpose: str,
    language: str | None = None,
    created_by: User = None,
    client: AnyfastClient | None = None,
) -> UpstreamVerification:
    """Mint an upstream session for ``invitation``, now that the person is there.

    ``purpose`` is ``phone`` (the person pressed Start: it counts as an attempt) or ``desk``
    (staff show its H5 link as a QR). The H5 link returned in ``h5_link`` carries ``lng`` in
    ``language`` (a ``Language`` value; the person's own by default) and works once, for
    ``ANYFAST_H5_LINK_TTL`` seconds.

    Refused (``InvitationUnavailable``) when the invitation ended, and (``AttemptsExhausted``)
    when a phone start would exceed ``VERIFICATION_MAX_ATTEMPTS``. When the upstream refuses,
    the failed attempt is recorded and ``UpstreamStartFailed`` raised. Two simultaneous starts
    may both pass the attempts check: at worst one attempt more than the limit.
    """
    if purpose not in UpstreamPurpose.values:
        raise ValueError(f"purpose must be one of {UpstreamPurpose.values}")
    now = timezone.now()
    _expire_if_overdue(invitation, now)
    if not invitation.is_open:
        raise InvitationUnavailable(
            f"This invitation is {invitation.get_status_display().lower()}.", invitation
        )
    consent_id = invitation.consent_id
    if consent_id is None or not ConsentRecord.objects.in_force().filter(pk=consent_id).exists():
        # Its consent ended since (its end date passed; ending it by review cancels invitations).
        raise InvitationUnavailable(
            "The consent this invitation backs is not in force: no verification now.", invitation
        )
    if purpose == UpstreamPurpose.PHONE and invitation_attempts_left(invitation) <= 0:
        raise AttemptsExhausted("Every verification attempt of this invitation was used.")
    language = language or invitation.person.preferred_language
    if language not in Language.values:
        language = Language.ENGLISH
    public_id = uuid.uuid4()
    owns_client = client is None
    client = client or AnyfastClient()
    row = UpstreamVerification(
        public_id=public_id,
        invitation=invitation,
        purpose=purpose,
        language=language,
        api_key_fingerprint=client.key_fingerprint,
        created_by=_user(created_by),
    )
    # Phone starts are the person's (pressing Start); desk ones the staff member's.
    actor_label = PERSON if purpose == UpstreamPurpose.PHONE else ""
    try:
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
        logger.warning("verification start failed for invitation %s: %s", invitation.pk, error)
        raise UpstreamStartFailed(row) from error
    finally:
        if owns_client:
            client.close()
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
    return row


@dataclass(frozen=True)
class CallbackOutcome:
    """What a callback did: ``recorded`` (first visit: parameters kept, confirmation queued),
    ``replayed`` (that session's callback was already recorded: nothing changed) or ``unknown``
    (no such session, or another session's BytedToken: nothing changed)."""

    kind: str
    verification: UpstreamVerification | None = None


def _callback_params(params: Mapping[str, str]) -> dict[str, str]:
    return {key: str(params[key])[:MAX_CALLBACK_VALUE] for key in CALLBACK_PARAMS if key in params}


@transaction.atomic
def upstream_verification_record_callback(
    *, public_id: uuid.UUID | str, params: Mapping[str, str]
) -> CallbackOutcome:
    """The person's browser came back from the H5 page to the session's CallbackURL.

    The first visit keeps the known parameters (``bytedToken``, ``resultCode``, …) and queues a
    confirmation at once; nothing else changes, whatever ``resultCode`` says. A ``bytedToken``
    that is not this session's makes the visit ``unknown`` (a callback without one is accepted:
    it is unverified whether failure callbacks carry it, docs/upstream.md §6.1).
    """
    verification = (
        UpstreamVerification.objects.select_related("invitation")
        .filter(public_id=public_id)
        .first()
    )
    if verification is None or verification.byted_token is None:
        return CallbackOutcome("unknown")
    token = params.get("bytedToken")
    if token is not None and token != verification.byted_token:
        return CallbackOutcome("unknown")
    now = timezone.now()
    first = UpstreamVerification.objects.filter(
        pk=verification.pk, callback_received_at__isnull=True
    ).update(callback_params=_callback_params(params), callback_received_at=now, updated_at=now)
    if not first:
        verification.refresh_from_db()
        return CallbackOutcome("replayed", verification)
    before, person_id = verification.status, verification.invitation.person_id
    UpstreamVerification.objects.filter(pk=verification.pk, status=UpstreamStatus.CREATED).update(
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
        from consent.tasks import confirm_upstream_verification

        confirm_upstream_verification.delay_on_commit(verification.pk)
    return CallbackOutcome("recorded", verification)


def _set_error(row: UpstreamVerification, error: UpstreamError) -> None:
    row.last_error_code = error.code[:100]
    row.last_error = error.message
    row.last_error_explanation = error.explanation


def is_token_gone(error: UpstreamError) -> bool:
    """Whether ``error`` says the BytedToken is expired or unknown (``NotFound.BytedToken`` 404,
    ``InvalidParameter.BytedToken`` 400; the code may be masked, ``***.BytedToken``)."""
    return error.code.rsplit(".", 1)[-1].lower() == "bytedtoken"


def _claim_poll(verification: UpstreamVerification, now: datetime.datetime, *, force: bool) -> bool:
    """Take this poll: count it and move ``next_poll_at`` on, unless another worker has it.

    Without ``force`` only a due session is taken (beat's sweep); ``force`` (the confirmation a
    callback asks for, and its retries) takes it whenever it was not polled within the last
    second, so that a sweep and a task never both ask at once.
    """
    interval = datetime.timedelta(seconds=poll_interval(verification, now))
    rows = UpstreamVerification.objects.filter(
        pk=verification.pk, status__in=PENDING_UPSTREAM_STATUSES
    )
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


def upstream_verification_confirm(
    *,
    upstream_verification_id: int,
    client: AnyfastClient | None = None,
    force: bool = False,
) -> UpstreamVerification:
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
    verification = UpstreamVerification.objects.select_related("invitation").get(
        pk=upstream_verification_id
    )
    now = timezone.now()
    if not verification.is_pending or not _claim_poll(verification, now, force=force):
        return verification
    owns_client = client is None
    client = client or AnyfastClient()
    try:
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


def _record_error(verification: UpstreamVerification, error: UpstreamError) -> None:
    """Keep the error on the pending session; an event when it differs from the last one (a
    session polled through an outage would otherwise write one every few seconds)."""
    changes = {
        "last_error_code": error.code[:100],
        "last_error": error.message,
        "last_error_explanation": error.explanation,
        "updated_at": timezone.now(),
    }
    rows = UpstreamVerification.objects.filter(
        pk=verification.pk, status__in=PENDING_UPSTREAM_STATUSES
    )
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
def _complete(verification: UpstreamVerification, group_id: str) -> None:
    now = timezone.now()
    won = UpstreamVerification.objects.filter(
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
        upstream_verification_id=verification.pk,
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
def _end(
    verification: UpstreamVerification, *, error: UpstreamError | None, explanation: str
) -> None:
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
            f"; then: {error.message}" if error else "."
        )
        explanation = FAILED_ON_PAGE_EXPLANATION
    else:
        status = UpstreamStatus.EXPIRED
        code = error.code[:100] if error else ""
        message = error.message if error else "GroupId still empty when the token expired."
    now = timezone.now()
    ended = audited_update(
        UpstreamVerification.objects.filter(
            pk=verification.pk, status__in=PENDING_UPSTREAM_STATUSES
        ),
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


def upstream_verification_poll_due(
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
    pushes back (rate limited). Returns how many sessions it polled.
    """
    time_budget = time_budget or settings.VERIFICATION_POLL_SWEEP_SECONDS
    if max_sessions is None:
        per_second = _budget_per_second("GetVisualValidateResult")
        max_sessions = max(1, int(per_second * time_budget * 2 / 3))
    deadline = time.monotonic() + time_budget
    ids = list(
        UpstreamVerification.objects.due_for_poll().values_list("pk", flat=True)[:max_sessions]
    )
    owns_client = client is None
    client = client or AnyfastClient()
    polled = 0
    try:
        for pk in ids:
            if time.monotonic() >= deadline:
                break
            try:
                upstream_verification_confirm(upstream_verification_id=pk, client=client)
            except (RateLimited, LocalRateLimitExceeded) as error:
                logger.info("verification poll sweep stops: %s", error)
                break
            polled += 1
    finally:
        if owns_client:
            client.close()
    return polled


def _budget_per_second(action: str) -> float:
    text = settings.ANYFAST_RATE_LIMITS.get(action, "3/1")
    count, _, seconds = text.partition("/")
    try:
        return int(count) / float(seconds or 1)
    except (ValueError, ZeroDivisionError):
        return 3.0


# --- Emails -----------------------------------------------------------------------------------


def outbound_email_send(*, outbound_email_id: int) -> OutboundEmail:
    """Send a queued email (rendered now in its language), recording the outcome on the row.

    Idempotent: a sent or failed email is left alone; the row is locked while sending, so two
    workers never both send it. A failure is recorded (``attempts``, ``last_error``) and the row
    stays queued until ``MAX_EMAIL_ATTEMPTS``, then it is failed.
    """
    with transaction.atomic():
        email = (
            OutboundEmail.objects.select_for_update(of=("self",))
            .select_related(
                "invitation__person",
                "invitation__created_by",
                "consent__person",
                "consent__created_by",
                "consent__reviewed_by",
            )
            .get(pk=outbound_email_id)
        )
        if email.status != EmailStatus.QUEUED:
            return email
        email.attempts += 1
        try:
            _deliver(email)
        except Exception as exc:  # SMTP, DNS, templates: every failure is recorded on the row
            email.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if email.attempts >= MAX_EMAIL_ATTEMPTS:
                email.status = EmailStatus.FAILED
            logger.warning("email %s failed (attempt %d): %s", email.pk, email.attempts, exc)
        else:
            email.status = EmailStatus.SENT
            email.sent_at = timezone.now()
            email.last_error = ""
        email.save(update_fields=["attempts", "last_error", "status", "sent_at", "updated_at"])
        about = email.invitation or email.consent
        audit_record(
            action=_EMAIL_ACTIONS[email.status],
            obj=email,
            actor_label=WORKER,
            person_id=about.person_id if about is not None else None,
            after={"status": email.status, "attempts": email.attempts},
            detail={"to": email.to, "template": email.template, "error": email.last_error[:500]},
        )
    return email


_EMAIL_ACTIONS: dict[str, str] = {
    EmailStatus.SENT: "email.sent",
    EmailStatus.QUEUED: "email.attempt_failed",  # to be tried again
    EmailStatus.FAILED: "email.failed",
}


def _email_context(subject: VerificationSession | ConsentRecord) -> dict[str, Any]:
    """What the templates of an email about ``subject`` (an invitation or a consent) read."""
    context: dict[str, Any] = {"organisation": settings.PORTAL_ORGANISATION_NAME}
    if isinstance(subject, VerificationSession):
        return {
            **context,
            "person": subject.person,
            "invitation": subject,
            "inviter": subject.created_by,
            "link": invitation_url(subject),
            "code": subject.display_code,
            "code_url": code_entry_url(),
            "expires_at": subject.expires_at,
        }
    return {
        **context,
        "person": subject.person,
        "consent": subject,
        "days_left": (subject.expires_on - timezone.localdate()).days
        if subject.expires_on
        else None,
        "retention_days": settings.BIOMETRIC_RETENTION_DAYS,
        "consent_url": settings.PORTAL_PUBLIC_URL
        + reverse("admin:consent_consentrecord_change", args=[subject.pk]),
    }


def _deliver(email: OutboundEmail) -> None:
    subject = email.invitation or email.consent
    if subject is None:
        raise ValueError("the email concerns neither an invitation nor a consent")
    context = _email_context(subject)
    with translation.override(django_language(email.language)):
        text = render_to_string(f"consent/email/{email.template}.txt", context)
        html = render_to_string(f"consent/email/{email.template}.html", context)
    message = EmailMultiAlternatives(subject=email.subject, body=text, to=[email.to])
    message.attach_alternative(html, "text/html")
    message.send()


# --- Consent lifecycle ----------------------------------------------------------------------------


S = ConsentStatus
# action: (statuses it may start from, status it ends in)
CONSENT_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "submit": (frozenset({S.DRAFT}), S.PENDING_REVIEW),
    "approve": (frozenset({S.PENDING_REVIEW}), S.APPROVED),
    "reject": (frozenset({S.PENDING_REVIEW}), S.REJECTED),
    "revoke": (frozenset({S.APPROVED}), S.REVOKED),
    "expire": (frozenset({S.APPROVED}), S.EXPIRED),
    "supersede": (frozenset({S.APPROVED}), S.SUPERSEDED),
}
# Versions may be made of records that were agreed or refused, never of work in progress.
_VERSIONABLE = frozenset({S.APPROVED, S.REJECTED, S.EXPIRED})
# Words that make a use anything but specific (SAG-AFTRA and AB 2602 ask for a "reasonably
# specific description of the intended uses").
_VAGUE = re.compile(
    r"\b(any(thing)?|all (uses|purposes|media)|whatever|unlimited|forever|in perpetuity|"
    r"without limit(ation)?s?|etc\.?)\b",
    re.IGNORECASE,
)
_USE_FIELDS = ("project", "medium", "channels", "territory", "languages", "description")
_REVIEW_YEARS = 3


class ConsentTransitionError(Exception):
    """The change is not allowed now; the message says why, in words for staff."""


class ConsentIncomplete(ConsentTransitionError):
    """The record lacks what approval needs; ``problems`` lists each, for staff."""

    def __init__(self, record: ConsentRecord, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{record} cannot go to review as it is: " + "; ".join(problems))


def consent_problems(record: ConsentRecord) -> list[str]:
    """What stops ``record`` from being submitted or approved (empty when it is complete)."""
    problems: list[str] = []
    if not record.signed_document:
        problems.append("the signed consent document is missing")
    if not re.fullmatch(r"[0-9a-f]{64}", record.consent_text_sha256 or ""):
        problems.append("the SHA-256 of the consent text shown is missing")
    if not record.biometric_notice_accepted:
        problems.append("the biometric data notice was not acknowledged (BIPA, GDPR Art. 9)")
    if record.is_minor and not (record.guardian_name and record.guardian_relationship):
        problems.append("the person is a minor: the guardian's name and relationship are needed")
    if record.representation != ConsentRecord.Representation.NONE and not (
        record.representative_name
    ):
        problems.append("the representative's name is missing")
    if not record.likeness_elements():
        problems.append("no likeness element (face, body, voice) is covered")
    uses = list(record.uses.all())
    if not uses:
        problems.append("no intended use is described")
    for number, use in enumerate(uses, start=1):
        problems.extend(f"use {number}: {problem}" for problem in _use_problems(use))
    return problems


def _use_problems(use: ConsentUse) -> Iterable[str]:
    for name in _USE_FIELDS:
        value = getattr(use, name).strip()
        if not value:
            yield f"the {name} is missing"
        elif name != "territory" and (match := _VAGUE.search(value)):
            yield f"the {name} is not specific (“{match.group(0)}”)"
    if len(use.description.strip()) < 20:
        yield "the description is too short to be specific (20 characters at least)"


def consent_red_flags(record: ConsentRecord) -> list[str]:
    """What legal should weigh before approving: allowed, but worth a second look."""
    flags: list[str] = []
    if record.expires_on is None:
        flags.append("no end date: the consent is open-ended")
    elif record.expires_on > record.starts_on + datetime.timedelta(days=365 * _REVIEW_YEARS):
        flags.append(f"it lasts more than {_REVIEW_YEARS} years")
    if record.allows_model_training:
        flags.append("it allows the likeness to be used to train models")
    if record.representation == ConsentRecord.Representation.NONE:
        flags.append(
            "the person was not represented by counsel or a union (California AB 2602 and "
            "SAG-AFTRA digital-replica terms expect representation)"
        )
    if not record.retention_policy_accepted:
        flags.append("the retention and destruction policy was not acknowledged")
    if record.likeness_voice != record.covers_audio:
        flags.append("voice and audio coverage disagree")
    if not record.prohibited_uses.strip():
        flags.append("no prohibited uses are stated")
    if record.is_minor:
        flags.append("the person is a minor")
    return flags


class ConsentFourEyes(ConsentTransitionError):
    """The reviewer submitted the record themselves (``CONSENT_FOUR_EYES``)."""


def consent_four_eyes_problem(*, record: ConsentRecord, actor: User) -> str:
    """Why ``actor`` may not approve or reject ``record``, or "" when they may: under four eyes
    (``CONSENT_FOUR_EYES``) whoever submitted a record for review never decides on it, however
    many permissions they hold (superusers included). The database never lets ``submitted_by``
    change after submission, so reading it before the transition is enough."""
    reviewer = _user(actor)
    if not settings.CONSENT_FOUR_EYES or reviewer is None:
        return ""
    submitted = ConsentRecord.objects.filter(pk=record.pk, submitted_by=reviewer)
    submitted_at = submitted.values_list("submitted_at", flat=True).first()
    if submitted_at is None:
        return ""
    when = timezone.localtime(submitted_at).strftime("%Y-%m-%d %H:%M")
    return (
        f"{reviewer.get_username()} submitted it for review on {when}: another reviewer must "
        f"approve or reject it (four eyes)"
    )


def _refuse_own_submission(record: ConsentRecord, actor: User, action: str) -> None:
    """In the transition's transaction: the row lock holds off a submission by the same user (in
    another tab) until the conditional UPDATE has found the record still a draft."""
    list(ConsentRecord.objects.select_for_update().filter(pk=record.pk).values_list("pk"))
    problem = consent_four_eyes_problem(record=record, actor=actor)
    if problem:
        raise ConsentFourEyes(f"{record} cannot be {_PAST[action]}: {problem}.")


def consent_submit(*, record: ConsentRecord, actor: User) -> ConsentRecord:
    """Send a complete draft to legal's review queue."""
    problems = consent_problems(record)
    if problems:
        raise ConsentIncomplete(record, problems)
    return _transition(
        record, "submit", actor=actor, submitted_by=_user(actor), submitted_at=timezone.now()
    )


def consent_approve(*, record: ConsentRecord, actor: User, note: str = "") -> ConsentRecord:
    """Approve a record under review; an earlier approved version it supersedes ends now.

    Not by whoever submitted it (four eyes, ``consent_four_eyes_problem``)."""
    problems = consent_problems(record)
    if problems:
        raise ConsentIncomplete(record, problems)
    now = timezone.now()
    with transaction.atomic():
        _refuse_own_submission(record, actor, "approve")
        approved = _transition(
            record,
            "approve",
            actor=actor,
            reviewed_by=_user(actor),
            reviewed_at=now,
            review_note=note.strip(),
            detail={"red_flags": consent_red_flags(record)},
        )
        earlier = approved.supersedes
        if earlier is not None and earlier.status == S.APPROVED:
            _transition(earlier, "supersede", actor=actor, ended_at=now, detail={"by": approved.pk})
            # Assets of the kinds the new version covers stay usable under it; the others are
            # withdrawn with the version that ended.
            assets_reassign_consent(
                from_consent_id=earlier.pk, to_consent_id=approved.pk, actor=actor
            )
            withdrawal_start(
                consent_id=earlier.pk, reason=WithdrawalReason.SUPERSEDED, requested_by=actor
            )
    return approved


def consent_reject(*, record: ConsentRecord, actor: User, reason: str) -> ConsentRecord:
    """Refuse a record under review, saying why (the reason is required); not by whoever
    submitted it (four eyes)."""
    if not reason.strip():
        raise ConsentTransitionError("Say why the consent record is rejected.")
    with transaction.atomic():
        _refuse_own_submission(record, actor, "reject")
        return _transition(
            record,
            "reject",
            actor=actor,
            reviewed_by=_user(actor),
            reviewed_at=timezone.now(),
            review_note=reason.strip(),
        )


def consent_revoke(
    *,
    record: ConsentRecord,
    actor: User,
    channel: str,
    reason: str,
    requested_at: datetime.datetime | None = None,
) -> ConsentRecord:
    """Record that the person withdrew an approved consent: it ends now, for every use."""
    if channel not in RevocationChannel.values:
        raise ConsentTransitionError("Say how the person withdrew consent.")
    if not reason.strip():
        raise ConsentTransitionError("Record the reason the person gave, or “none given”.")
    now = timezone.now()
    if requested_at is not None and requested_at > now:
        raise ConsentTransitionError("The withdrawal cannot have been asked for in the future.")
    with transaction.atomic():
        revoked = _transition(
            record,
            "revoke",
            actor=actor,
            revoked_at=now,
            revoked_by=_user(actor),
            revocation_channel=channel,
            revocation_requested_at=requested_at or now,
            revocation_reason=reason.strip(),
            ended_at=now,
        )
        # In the same transaction: the consent never ends without its withdrawal upstream.
        withdrawal_start(consent_id=revoked.pk, reason=WithdrawalReason.REVOKED, requested_by=actor)
    return revoked


def consent_expire_due(*, today: datetime.date | None = None) -> list[int]:
    """End every approved record whose end date has passed, each with its withdrawal upstream;
    returns their ids."""
    day = today or timezone.localdate()
    expired: list[int] = []
    due = ConsentRecord.objects.filter(status=S.APPROVED, expires_on__lt=day)
    for record in due.order_by("expires_on", "pk"):
        try:
            with transaction.atomic():
                _transition(
                    record, "expire", actor=None, actor_label="scheduler", ended_at=timezone.now()
                )
                withdrawal_start(
                    consent_id=record.pk,
                    reason=WithdrawalReason.EXPIRED,
                    requested_by=None,
                    requested_by_label="scheduler",
                )
        except ConsentTransitionError:
            continue  # revoked or superseded meanwhile: someone else ended it
        expired.append(record.pk)
    return expired


def consent_warn_expiring(*, today: datetime.date | None = None) -> list[int]:
    """Warn, once per consent, that an approved consent ends within
    ``CONSENT_EXPIRY_WARNING_DAYS``: the person (in their language) and the staff who created
    and reviewed it, by email. Returns the ids of the consents warned.

    Each consent is claimed by a conditional UPDATE of ``expiry_warning_sent_at``, in the same
    transaction as its emails and its audit event: a second run (or a second beat) sends nothing.
    A consent with no one to write to is marked all the same, with the event saying so.
    """
    day = today or timezone.localdate()
    horizon = day + datetime.timedelta(days=settings.CONSENT_EXPIRY_WARNING_DAYS)
    due = ConsentRecord.objects.filter(
        status=S.APPROVED,
        expires_on__gte=day,
        expires_on__lte=horizon,
        expiry_warning_sent_at__isnull=True,
    )
    warned = []
    for record_id in due.order_by("expires_on", "pk").values_list("pk", flat=True):
        with transaction.atomic():
            now = timezone.now()
            if not ConsentRecord.objects.filter(
                pk=record_id, status=S.APPROVED, expiry_warning_sent_at__isnull=True
            ).update(expiry_warning_sent_at=now):
                continue
            record = ConsentRecord.objects.select_related(
                "person", "created_by", "reviewed_by"
            ).get(pk=record_id)
            emails = _queue_expiry_warnings(record)
            audit_record(
                action="consent.expiry_warning_sent",
                obj=record,
                actor_label="scheduler",
                person_id=record.person_id,
                detail={
                    "expires_on": record.expires_on,
                    "days_left": (record.expires_on - day).days if record.expires_on else None,
                    "emails": [{"id": email.pk, "to": email.to} for email in emails],
                },
            )
        warned.append(record_id)
    return warned


def _queue_expiry_warnings(record: ConsentRecord) -> list[OutboundEmail]:
    """One email to the person (their language), one to each staff member who created or
    reviewed the record (English); each sent by a task after commit."""
    person = record.person
    recipients: list[tuple[str, str, str]] = []
    if person.email:
        recipients.append((person.email, "consent_expiry_warning", person.preferred_language))
    staff_addresses: list[str] = []
    for user in (record.created_by, record.reviewed_by):
        if user is not None and user.is_active and user.email not in ("", *staff_addresses):
            staff_addresses.append(user.email)
    for address in staff_addresses:
        recipients.append((address, "consent_expiry_warning_staff", Language.ENGLISH))
    emails = []
    from consent.tasks import send_outbound_email

    for to, template, language in recipients:
        with translation.override(django_language(language)):
            subject = render_to_string(
                f"consent/email/{template}_subject.txt", _email_context(record)
            ).strip()
        email = OutboundEmail.objects.create(
            consent=record, to=to, template=template, language=language, subject=subject[:200]
        )
        send_outbound_email.delay_on_commit(email.pk)
        emails.append(email)
    return emails


@transaction.atomic
def person_set_legal_hold(*, person: Person, hold: bool, actor: User, note: str) -> Person:
    """Place (``hold``) or lift a legal hold on a person's biometric media: while it holds,
    retention destroys none of their files. The reason is required and kept."""
    if not note.strip():
        raise ValidationError("Say why the legal hold is placed or lifted.")
    locked = Person.objects.select_for_update().get(pk=person.pk)
    if locked.legal_hold == hold:
        state = "already under" if hold else "not under"
        raise ValidationError(f"{person} is {state} a legal hold.")
    before = snapshot(locked, ["legal_hold", "legal_hold_note"])
    Person.objects.filter(pk=person.pk).update(
        legal_hold=hold, legal_hold_note=note.strip(), updated_at=timezone.now()
    )
    locked.refresh_from_db()
    audit_record(
        action="person.legal_hold_placed" if hold else "person.legal_hold_lifted",
        obj=locked,
        actor=actor,
        person_id=locked.pk,
        before=before,
        after=snapshot(locked, ["legal_hold", "legal_hold_note"]),
    )
    return locked


def consent_new_version(*, record: ConsentRecord, actor: User) -> ConsentRecord:
    """A draft copy of ``record`` (its uses included) that will supersede it once approved.

    The signed document is not copied: a new version is a new agreement, signed anew.
    """
    if record.status not in _VERSIONABLE:
        raise ConsentTransitionError(
            f"A new version is made of an approved, rejected or expired record, "
            f"not of one that is {record.get_status_display().lower()}."
        )
    with transaction.atomic():
        ConsentRecord.objects.select_for_update().get(pk=record.pk)
        pending = record.superseded_by.filter(status__in=[S.DRAFT, S.PENDING_REVIEW]).first()
        if pending is not None:
            raise ConsentTransitionError(f"{pending} is already the next version of this record.")
        copied = {
            field.attname: getattr(record, field.attname)
            for field in ConsentRecord._meta.concrete_fields
            if field.name not in _NOT_COPIED
        }
        version = ConsentRecord.objects.create(**copied, supersedes=record, created_by=_user(actor))
        ConsentUse.objects.bulk_create(
            ConsentUse(consent=version, **{name: getattr(use, name) for name in _USE_FIELDS})
            for use in record.uses.all()
        )
        audit_record(
            action="consent.new_version",
            obj=version,
            actor=actor,
            person_id=record.person_id,
            detail={"supersedes": record.pk},
        )
    return version


def consent_version_differences(
    *, earlier: ConsentRecord, current: ConsentRecord
) -> list[dict[str, Any]]:
    """Every term of two versions side by side: ``label``, ``earlier``, ``current``, ``changed``.

    Terms are the fields a new version copies, then the uses (one line each).
    """
    rows = []
    for field in ConsentRecord._meta.concrete_fields:
        if field.name in _NOT_COPIED:
            continue
        before, after = (_shown(record, field) for record in (earlier, current))
        rows.append(
            {
                "label": field.verbose_name,
                "earlier": before,
                "current": after,
                "changed": before != after,
            }
        )
    uses = ["\n".join(str(use) for use in record.uses.all()) for record in (earlier, current)]
    rows.append(
        {
            "label": "intended uses (specific)",
            "earlier": uses[0],
            "current": uses[1],
            "changed": uses[0] != uses[1],
        }
    )
    return rows


def consent_terms(record: ConsentRecord) -> list[tuple[Any, str]]:
    """A record's terms (the fields a new version copies), each with its value in words."""
    return [
        (field, _shown(record, field))
        for field in ConsentRecord._meta.concrete_fields
        if field.name not in _NOT_COPIED
    ]


def _shown(record: ConsentRecord, field: Any) -> str:
    if field.choices:
        return str(getattr(record, f"get_{field.name}_display")())
    value = getattr(record, field.name)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "—" if value in (None, "") else str(value)


# Fields a new version starts without: its own identity, review, document and history.
_NOT_COPIED = frozenset(
    {
        "id",
        "status",
        "signed_document",
        "supersedes",
        "created_by",
        "created_at",
        "updated_at",
        *ConsentRecord.LIFECYCLE_FIELDS,
    }
)


def _transition(
    record: ConsentRecord,
    action: str,
    *,
    actor: User,
    actor_label: str = "",
    detail: dict[str, Any] | None = None,
    **changes: Any,
) -> ConsentRecord:
    allowed, target = CONSENT_TRANSITIONS[action]
    with transaction.atomic():
        before = snapshot(record, ["status", *changes])
        updated = ConsentRecord.objects.filter(pk=record.pk, status__in=allowed).update(
            status=target, updated_at=timezone.now(), **changes
        )
        if not updated:
            current = ConsentRecord.objects.get(pk=record.pk)
            raise ConsentTransitionError(
                f"{record} cannot be {_PAST[action]}: it is {current.get_status_display().lower()}."
            )
        record.refresh_from_db()
        if target != S.APPROVED and action != "submit":
            # Biometric verification needs consent in force: invitations backing it end too.
            for invitation in VerificationSession.objects.open().filter(consent=record):
                invitation_cancel(invitation=invitation, by=actor)
        audit_record(
            action=f"consent.{action}",
            obj=record,
            actor=actor,
            actor_label=actor_label,
            person_id=record.person_id,
            before=before,
            after=snapshot(record, ["status", *changes]),
            detail=detail,
        )
    return record


_PAST = {
    "submit": "submitted for review",
    "approve": "approved",
    "reject": "rejected",
    "revoke": "revoked",
    "expire": "marked expired",
    "supersede": "superseded",
}
