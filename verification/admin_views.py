"""Staff's side of real-person verification in the admin: invite, resend, cancel, reissue, the
invitation's QR page and "Verify here now" at the desk.

A thin UI over ``consent.services``: each operation here calls one service and turns its
refusal (``VerificationRefused``, whose text is written for staff) into a message. The
``ModelAdmin`` classes in ``consent.admin`` wire them to actions, buttons and URLs, and check
permissions before calling them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin import ModelAdmin
from django.db.models import (
    Case,
    CharField,
    Exists,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    TextChoices,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Now
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from consent.models import ConsentRecord, Person
from portal.admin_helpers import badge
from portal.qr import qr_svg
from upstream import UpstreamError
from upstream.errors import mask_byted_token
from verification.models import (
    OPEN_VERIFICATION_STATUSES,
    UpstreamPurpose,
    UpstreamSession,
    UpstreamStatus,
    VerificationSession,
    VerificationStatus,
    past_expiry,
)
from verification.services import invitations, sessions
from verification.timeline import invitation_timeline

logger = logging.getLogger(__name__)

# The desk page mints a new QR code every time one runs out (each is an upstream session the
# poller then watches), so it stops after this many unused codes until staff ask for another.
DESK_AUTO_MINTS = 5


def invitation_admin_url(invitation: VerificationSession, view: str = "change") -> str:
    """The admin URL of ``view`` (change, qr, desk, ...) of ``invitation``."""
    return reverse(f"admin:verification_verificationsession_{view}", args=[invitation.pk])


@dataclass(frozen=True)
class Outcome:
    """What an operation did, as a message for ``message_user``."""

    message: str
    level: int = messages.SUCCESS
    invitation: VerificationSession | None = None

    def report(self, model_admin: Any, request: HttpRequest) -> None:
        """Shows the message to the user of ``model_admin``'s page."""
        model_admin.message_user(request, self.message, self.level)


def _refused(subject: object, exc: invitations.VerificationRefused) -> Outcome:
    return Outcome(f"{subject}: {exc}", messages.ERROR)


def consent_to_back(person: Person) -> ConsentRecord | None:
    """The consent record a new invitation of ``person`` backs: the latest approved one in force
    today (verification collects biometric data), else one signed electronically and waiting for
    review, else a draft awaiting the person's electronic signature (signed on the invitation
    page), else none, which ``invitation_create`` refuses with the reason."""
    records = person.consent_records.order_by("-created_at", "-pk")
    backing = records.in_force().first() or records.backing_verification().first()
    if backing is not None:
        return backing
    drafts = records.filter(status=ConsentRecord.Status.DRAFT).select_related("template_version")
    return next((draft for draft in drafts if draft.awaiting_signature), None)


def _qr_link(invitation: VerificationSession) -> SafeString:
    return format_html('<a href="{}">QR code</a>', invitation_admin_url(invitation, "qr"))


def invite(request: HttpRequest, person: Person) -> Outcome:
    """Invite ``person`` (``invitation_create``), emailing them when they have an address."""
    try:
        invitation = invitations.invitation_create(
            person=person, consent=consent_to_back(person), created_by=request.user
        )
    except invitations.VerificationRefused as exc:
        return _refused(person, exc)
    if person.email:
        message = format_html(
            "Invited {}: the invitation email to {} is on its way. {} for the desk.",
            person,
            person.email,
            _qr_link(invitation),
        )
    else:
        message = format_html(
            "Invited {}, who has no email address: show them the {} or its code {}.",
            person,
            _qr_link(invitation),
            invitation.display_code,
        )
    return Outcome(message, invitation=invitation)


def resend(request: HttpRequest, invitation: VerificationSession) -> Outcome:
    """Email an open invitation again (same link and code)."""
    try:
        email = invitations.invitation_resend(invitation=invitation, by=request.user)
    except invitations.VerificationRefused as exc:
        return _refused(invitation.person, exc)
    return Outcome(
        format_html("Sent {}'s invitation again, to {}.", invitation.person, email.to),
        invitation=invitation,
    )


def cancel(request: HttpRequest, invitation: VerificationSession) -> Outcome:
    """End an open invitation: its link and code stop working."""
    try:
        invitations.invitation_cancel(invitation=invitation, by=request.user)
    except invitations.VerificationRefused as exc:
        return _refused(invitation.person, exc)
    return Outcome(
        format_html(
            "Cancelled {}'s invitation: its link and code no longer work.", invitation.person
        ),
        invitation=invitation,
    )


def reissue(request: HttpRequest, invitation: VerificationSession) -> Outcome:
    """A new invitation (new link, code, lifetime and attempts) in place of ``invitation``."""
    try:
        new = invitations.invitation_reissue(invitation=invitation, by=request.user)
    except invitations.VerificationRefused as exc:
        return _refused(invitation.person, exc)
    emailed = (
        format_html("the new invitation email to {} is on its way", new.person.email)
        if new.person.email
        else "no email was sent (no address)"
    )
    return Outcome(
        format_html(
            "Reissued {}'s invitation: the old link and code no longer work; {}. "
            "{} of the new one.",
            new.person,
            emailed,
            _qr_link(new),
        ),
        invitation=new,
    )


# --- Pages ------------------------------------------------------------------------------------


def _page_context(
    model_admin: ModelAdmin[Any], request: HttpRequest, invitation: VerificationSession, title: str
) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "invitation": invitation,
        "person": invitation.person,
        "invitation_url": invitation_admin_url(invitation),
    }


def invitation_panel_context(invitation: VerificationSession) -> dict[str, Any]:
    """What the invitation's QR panel shows: its link as a QR code and as text, and its code."""
    link = invitations.invitation_url(invitation)
    return {
        "link": link,
        "qr": qr_svg(link, label=f"QR code of {invitation.person}'s invitation link"),
        "code_url": invitations.code_entry_url(),
    }


def qr_page(
    model_admin: ModelAdmin[Any], request: HttpRequest, invitation: VerificationSession
) -> TemplateResponse:
    """The invitation's QR code, link and typed code, large enough to show across a desk."""
    context = _page_context(model_admin, request, invitation, f"QR code for {invitation.person}")
    context.update(invitation_panel_context(invitation))
    context["desk_url"] = invitation_admin_url(invitation, "desk")
    return TemplateResponse(request, "admin/verification/verificationsession/qr.html", context)


def desk_page(
    model_admin: ModelAdmin[Any], request: HttpRequest, invitation: VerificationSession
) -> TemplateResponse:
    """ "Verify here now": the page itself holds nothing minted; its script asks ``desk_mint``
    for a code as soon as it loads (a GET changes nothing upstream)."""
    context = _page_context(model_admin, request, invitation, f"Verify {invitation.person} now")
    context.update(
        mint_url=invitation_admin_url(invitation, "desk_mint"),
        status_url=invitation_admin_url(invitation, "desk_status"),
        max_mints=DESK_AUTO_MINTS,
        ttl=settings.ANYFAST_H5_LINK_TTL,
    )
    return TemplateResponse(request, "admin/verification/verificationsession/desk.html", context)


def desk_mint(request: HttpRequest, invitation: VerificationSession) -> JsonResponse:
    """Mint a desk upstream session (``upstream_session_start``, purpose ``desk``) and
    answer its H5 link, the link's real expiry and its QR code, as JSON.

    409 when the invitation is no longer open (or the rules refuse), 502 when the upstream
    refused or did not answer: ``{"error": ...}`` in words for staff.
    """
    try:
        row = sessions.upstream_session_start(
            invitation=invitation, purpose=UpstreamPurpose.DESK, created_by=request.user
        )
    except invitations.UpstreamStartFailed as exc:
        words = " ".join(part for part in (str(exc), exc.explanation) if part)
        return JsonResponse({"error": f"The upstream refused a new code: {words}"}, status=502)
    except invitations.VerificationRefused as exc:
        return JsonResponse({"error": str(exc)}, status=409)
    except UpstreamError as exc:  # not expected from the service; never a 500 at the desk
        logger.warning("desk code for invitation %s failed: %s", invitation.pk, exc)
        return JsonResponse({"error": f"The upstream did not answer: {exc}"}, status=502)
    assert row.h5_link_expires_at is not None  # set on every started session
    expires_in = max(0.0, (row.h5_link_expires_at - timezone.now()).total_seconds())
    return JsonResponse(
        {
            "session": row.pk,
            "h5_link": row.h5_link,
            "expires_at": row.h5_link_expires_at.isoformat(),
            "expires_in": round(expires_in, 1),
            "ttl": settings.ANYFAST_H5_LINK_TTL,
            "qr": qr_svg(row.h5_link, label=f"QR code for {invitation.person} to verify now"),
        },
        status=201,
    )


_SESSION_MESSAGES = {
    UpstreamStatus.CALLBACK_RECEIVED: "The phone is back from the verification page: "
    "confirming the result with the upstream…",
    UpstreamStatus.FAILED: "That attempt failed",
    UpstreamStatus.EXPIRED: "That code expired without a result",
}


def _session_status(row: UpstreamSession) -> dict[str, Any]:
    message = _SESSION_MESSAGES.get(UpstreamStatus(row.status), "")
    finished = row.status in (UpstreamStatus.FAILED, UpstreamStatus.EXPIRED)
    if finished:
        words = mask_byted_token(f"{row.last_error_code} {row.last_error}".strip(), row.byted_token)
        message = f"{message}: {words}" if words else message
        message += ". Show a new code to try again."
    return {
        "id": row.pk,
        "status": row.status,
        "label": row.get_status_display(),
        "finished": finished,
        "message": message,
    }


def desk_status(request: HttpRequest, invitation: VerificationSession) -> JsonResponse:
    """The invitation's state for the desk page, read from the database (never the upstream:
    confirmations are the callback's and the poller's job).

    ``state`` is ``verified``, ``closed`` (cancelled, expired or out of attempts) or
    ``waiting``; with ``?session=<id>``, ``session`` describes that desk session.
    """
    person = invitation.person
    if invitation.status == VerificationStatus.VERIFIED:
        confirmed = (
            invitation.upstream_sessions.filter(status=UpstreamStatus.CONFIRMED)
            .order_by("confirmed_at")
            .first()
        )
        group = f" (LivenessFace group {confirmed.group_id})" if confirmed else ""
        state, message = "verified", f"{person} is verified{group}."
    elif invitation.is_open:
        state, message = "waiting", ""
    else:
        state = "closed"
        message = f"This invitation is {invitation.get_status_display().lower()}: no more codes."
    body: dict[str, Any] = {
        "state": state,
        "status": invitation.status,
        "label": invitation.get_status_display(),
        "message": message,
        "session": None,
    }
    session_id = request.GET.get("session", "")
    if session_id.isdigit():
        row = invitation.upstream_sessions.filter(pk=int(session_id)).first()
        if row is not None:
            body["session"] = _session_status(row)
    return JsonResponse(body)


# --- The timeline -----------------------------------------------------------------------------


def timeline_context(invitations: list[VerificationSession]) -> list[dict[str, Any]]:
    """Each invitation with its link and its timeline (``invitation_timeline``), in order."""
    return [
        {
            "invitation": invitation,
            "url": invitation_admin_url(invitation),
            "badge": badge(invitation.status, invitation.get_status_display()),
            "entries": invitation_timeline(invitation),
        }
        for invitation in invitations
    ]


# --- A person's verification state ----------------------------------------------------------


class VerificationState(TextChoices):
    """Where a person stands, by their latest invitation (the person list's filter and column).

    An open invitation whose lifetime has passed counts as expired before beat's sweep ends it.
    """

    NEVER = "never", "Never invited"
    WAITING = "waiting", "Invited, waiting"
    VERIFIED = "verified", "Verified"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# Each state's badge takes the colour of the invitation status it stands for.
_STATE_TONES = {
    VerificationState.WAITING: "invited",
    VerificationState.VERIFIED: "verified",
    VerificationState.FAILED: "failed",
}


def with_verification_state(people: QuerySet[Person]) -> QuerySet[Person]:
    """``people`` annotated with ``verification_state`` (a ``VerificationState`` value), in the
    same query: one correlated subquery, the state of each person's latest invitation.

    The state is worked out inside the subquery: a CASE over several subqueries of the latest
    invitation's fields makes PostgreSQL run each of them again (12 times slower, measured).
    """
    open_statuses = OPEN_VERIFICATION_STATUSES
    state = Case(
        When(
            Q(status__in=open_statuses) & past_expiry(Now()), then=Value(VerificationState.EXPIRED)
        ),
        When(status__in=open_statuses, then=Value(VerificationState.WAITING)),
        When(status=VerificationStatus.VERIFIED, then=Value(VerificationState.VERIFIED)),
        When(status=VerificationStatus.FAILED, then=Value(VerificationState.FAILED)),
        When(status=VerificationStatus.EXPIRED, then=Value(VerificationState.EXPIRED)),
        default=Value(VerificationState.CANCELLED),
        output_field=CharField(),
    )
    latest = (
        VerificationSession.objects.filter(person=OuterRef("pk"))
        .order_by("-created_at", "-pk")
        .annotate(state=state)
        .values("state")[:1]
    )
    return people.annotate(
        verification_state=Coalesce(
            Subquery(latest, output_field=CharField()), Value(VerificationState.NEVER)
        )
    )


def people_in_verification_state(state: str) -> QuerySet[Any]:
    """The ids of the people whose verification stands at ``state`` (``pk__in=`` this), the
    same people as ``with_verification_state`` says, found from the invitations' side.

    A filter on that annotation runs its subquery once per person (16 ms a queue at 10,000
    people); this reads the invitations in ``state`` (on their status indexes) and keeps those
    no later invitation of the same person follows (on ``invitation_person_latest``).
    """
    if state == VerificationState.NEVER:
        invited = VerificationSession.objects.filter(person=OuterRef("pk"))
        return Person.objects.filter(~Exists(invited)).values("pk")
    is_open = Q(status__in=OPEN_VERIFICATION_STATUSES)
    conditions = {
        VerificationState.WAITING: is_open & ~past_expiry(Now()),
        VerificationState.EXPIRED: (is_open & past_expiry(Now()))
        | Q(status=VerificationStatus.EXPIRED),
        VerificationState.VERIFIED: Q(status=VerificationStatus.VERIFIED),
        VerificationState.FAILED: Q(status=VerificationStatus.FAILED),
        VerificationState.CANCELLED: ~is_open
        & ~Q(
            status__in=[
                VerificationStatus.VERIFIED,
                VerificationStatus.FAILED,
                VerificationStatus.EXPIRED,
            ]
        ),
    }
    later = VerificationSession.objects.filter(person=OuterRef("person")).filter(
        Q(created_at__gt=OuterRef("created_at"))
        | Q(created_at=OuterRef("created_at"), pk__gt=OuterRef("pk"))
    )
    latest = VerificationSession.objects.filter(conditions[VerificationState(state)])
    return latest.filter(~Exists(later)).values("person_id")


def verification_state_badge(state: str) -> str:
    return badge(_STATE_TONES.get(VerificationState(state), "grey"), VerificationState(state).label)
