"""Invitations to real-person verification: made, emailed, opened, cancelled, reissued, expired.

An invitation backs an approved consent in force (verification collects biometric data) and
lives ``VERIFICATION_INVITATION_TTL_DAYS`` (``invitation_expiry``). Each function is keyword-only
and atomic, changes a status with a conditional UPDATE and writes its audit event in the same
transaction. The upstream sessions made from an invitation are ``verification.services.sessions``'.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from audit.services import acting_user, audit_record, audited_update, snapshot
from consent.models import ConsentRecord, Person, django_language, personal_link_issue
from mail.models import OutboundEmail
from mail.services import email_queue, render_email
from upstream.errors import EMPTY_GROUP_ID_EXPLANATION
from verification.models import (
    OPEN_VERIFICATION_STATUSES,
    UpstreamSession,
    VerificationSession,
    VerificationStatus,
)

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser | None


SUCCESS_RESULT_CODE = "10000"
# What the portal keeps of a callback's query (docs/upstream.md §6.1); anything else is dropped.
CALLBACK_PARAMS = ("bytedToken", "resultCode", "algorithmBaseRespCode", "reqMeasureInfoValue",
                   "verify_type")  # fmt: skip
MAX_CALLBACK_VALUE = 200
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

    def __init__(self, verification: UpstreamSession) -> None:
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


def _expire_if_overdue(invitation: VerificationSession, now: datetime.datetime) -> bool:
    """Ends ``invitation`` when its lifetime has passed (and refreshes it); whether it did."""
    if not (invitation.is_open and invitation.is_past_expiry(now)):
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
    release, GDPR Art. 9): ``consent`` must be theirs, approved and in force today, or signed
    electronically and waiting for review, or a draft awaiting their electronic signature
    (signed on the invitation page before verification starts). Refuses too
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
        person=person, consent=consent, created_by=acting_user(created_by)
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
    if consent.awaiting_signature:
        # The person signs it on the invitation page, before verifying: it must be complete.
        from consent.esign import esign_problems  # consent.services imports this module

        problems = esign_problems(consent)
        if problems:
            raise VerificationRefused(
                "This consent cannot be signed electronically as it is: " + "; ".join(problems)
            )
        return
    if not ConsentRecord.objects.backing_verification().filter(pk=consent.pk).exists():
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
    subject, text, html = render_email(
        "verification/email/invitation",
        _invitation_email_context(invitation),
        language=django_language(person.preferred_language),
    )
    return email_queue(
        kind="invitation",
        to=person.email,
        subject=subject,
        text=text,
        html=html,
        about=invitation,
        person_id=person.pk,
        language=person.preferred_language,
        created_by=created_by,
    )


def _invitation_email_context(invitation: VerificationSession) -> dict[str, Any]:
    """What the invitation email's templates read."""
    return {
        "organisation": settings.PORTAL_ORGANISATION_NAME,
        "person": invitation.person,
        "invitation": invitation,
        "inviter": invitation.created_by,
        "link": invitation_url(invitation),
        "code": invitation.display_code,
        "code_url": code_entry_url(),
        "expires_at": invitation.expires_at,
        "personal_link": personal_link_issue(person=invitation.person, sent_for="invitation"),
    }


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
            "ended_by": acting_user(by),
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
        replaced_by=new, ended_by=acting_user(by) or F("ended_by")
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
        actor_label="" if acting_user(actor) else PERSON,
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
    if invitation.upstream_sessions.pending().exists():
        return
    audited_update(
        VerificationSession.objects.filter(pk=invitation_id, status__in=OPEN_VERIFICATION_STATUSES),
        {"status": VerificationStatus.FAILED, "ended_at": now, "updated_at": now},
        obj=invitation,
        action="invitation.failed",
        person_id=invitation.person_id,
        actor_label=WORKER,
    )
