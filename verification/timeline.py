"""Reads of the verification workflow for people (staff in the admin): the timeline."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.utils import timezone

from assets.models import AssetGroup
from mail.models import EmailStatus
from upstream.errors import mask_byted_token
from verification.models import (
    UpstreamPurpose,
    UpstreamSession,
    UpstreamStatus,
    VerificationSession,
    VerificationStatus,
)
from verification.services.invitations import SUCCESS_RESULT_CODE


@dataclass(frozen=True)
class TimelineEntry:
    """One event of an invitation's life.

    ``tone`` is a badge colour of ``portal.admin_helpers``: ``green`` (done), ``amber`` (waiting),
    ``red`` (failed) or ``grey`` (neutral). ``detail`` carries the upstream's own words where
    there are some; ``explanation`` what they mean and what to do (the guide's troubleshooting).
    """

    when: datetime.datetime
    label: str
    detail: str = ""
    tone: str = "grey"
    explanation: str = ""


def _token(value: str | None) -> str:
    return f"BytedToken …{value[-6:]}" if value else ""


def _words(session: UpstreamSession) -> str:
    """The upstream's words on ``session``, a BytedToken they quote cut short."""
    words = f"{session.last_error_code} {session.last_error}".strip()
    return mask_byted_token(words, session.byted_token)


def invitation_timeline(invitation: VerificationSession) -> list[TimelineEntry]:
    """Everything that happened to ``invitation``, oldest first, derived from its rows.

    Rows keep their history (every email and every upstream session stays), so nothing here is
    stored twice. About ten queries whatever the length.
    """
    entries: list[TimelineEntry] = []
    add = entries.append
    by = f" by {invitation.created_by}" if invitation.created_by else ""
    add(
        TimelineEntry(
            invitation.created_at,
            "Invited",
            # Not its code: the code opens the invitation, and staff who may not change
            # invitations see timelines too (the code is on the invitation's panel).
            f"Invitation created{by}; valid until "
            f"{timezone.localtime(invitation.expires_at):%Y-%m-%d %H:%M}.",
            "grey",
        )
    )
    for email in invitation.emails.order_by("created_at", "pk"):
        if email.status == EmailStatus.SENT and email.sent_at:
            add(TimelineEntry(email.sent_at, "Email sent", f"To {email.to}.", "green"))
        elif email.status == EmailStatus.FAILED:
            add(
                TimelineEntry(
                    email.updated_at,
                    "Email failed",
                    f"To {email.to}, after {email.attempts} attempts: {email.last_error}",
                    "red",
                    "Check the address and the mail server (EMAIL_URL), then resend.",
                )
            )
        else:
            retrying = f" (retrying; last error: {email.last_error})" if email.last_error else ""
            add(
                TimelineEntry(
                    email.created_at, "Email queued", f"To {email.to}{retrying}.", "amber"
                )
            )
    if invitation.opened_at:
        add(
            TimelineEntry(
                invitation.opened_at, "Opened", "The person opened the invitation.", "grey"
            )
        )

    sessions = list(invitation.upstream_sessions.order_by("created_at", "pk"))
    groups = {
        group.upstream_session_id: group
        for group in AssetGroup.objects.filter(upstream_session__in=sessions)
    }
    for session in sessions:
        where = "at the desk" if session.purpose == UpstreamPurpose.DESK else "on the phone"
        if not session.byted_token:
            add(
                TimelineEntry(
                    session.created_at,
                    "Upstream session could not be created",
                    f"{where.capitalize()}: {session.last_error_code} {session.last_error}".strip(),
                    "red",
                    session.last_error_explanation,
                )
            )
            continue
        add(
            TimelineEntry(
                session.created_at,
                "Upstream session created",
                f"{where.capitalize()}, {_token(session.byted_token)}.",
                "grey",
            )
        )
        if session.callback_received_at:
            code = session.callback_result_code or "(none)"
            claim = "success" if code == SUCCESS_RESULT_CODE else "failure"
            add(
                TimelineEntry(
                    session.callback_received_at,
                    "Callback received",
                    f"The person came back from the verification page: resultCode={code} "
                    f"({claim} claimed; only the upstream's result decides).",
                    "amber" if claim == "success" else "red",
                )
            )
        if session.status == UpstreamStatus.CONFIRMED and session.confirmed_at:
            add(
                TimelineEntry(
                    session.confirmed_at,
                    "Confirmed",
                    f"GetVisualValidateResult answered GroupId {session.group_id}.",
                    "green",
                )
            )
            group = groups.get(session.pk)
            if group is not None:
                add(
                    TimelineEntry(
                        group.created_at,
                        "Group created",
                        f"LivenessFace group {group.group_id} recorded for {invitation.person}.",
                        "green",
                    )
                )
        elif session.status in (UpstreamStatus.FAILED, UpstreamStatus.EXPIRED):
            words = _words(session)
            add(
                TimelineEntry(
                    session.ended_at or session.updated_at,
                    "Failed" if session.status == UpstreamStatus.FAILED else "Expired",
                    f"{_token(session.byted_token)}: {words}"
                    if words
                    else _token(session.byted_token),
                    "red" if session.status == UpstreamStatus.FAILED else "grey",
                    session.last_error_explanation,
                )
            )
        elif session.last_error:
            add(
                TimelineEntry(
                    session.updated_at,
                    "Upstream error while confirming",
                    _words(session),
                    "amber",
                    session.last_error_explanation,
                )
            )

    ended = invitation.ended_at or invitation.updated_at
    if invitation.status == VerificationStatus.VERIFIED and invitation.verified_at:
        add(TimelineEntry(invitation.verified_at, "Verified", str(invitation.person), "green"))
    elif invitation.status == VerificationStatus.CANCELLED:
        who = f" by {invitation.ended_by}" if invitation.ended_by else ""
        add(TimelineEntry(ended, "Cancelled", f"Invitation cancelled{who}.", "grey"))
    elif invitation.status == VerificationStatus.EXPIRED:
        add(TimelineEntry(ended, "Invitation expired", "Its link and code no longer work.", "grey"))
    elif invitation.status == VerificationStatus.FAILED:
        add(
            TimelineEntry(
                ended,
                "Attempts exhausted",
                "Every verification attempt of this invitation was used without success.",
                "red",
                "Reissue the invitation to give the person new attempts.",
            )
        )
    if invitation.replaced_by_id:
        add(
            TimelineEntry(
                invitation.replaced_by.created_at,  # type: ignore[union-attr]
                "Reissued",
                "A new invitation (new link and code) replaced this one.",
                "grey",
            )
        )
    return sorted(entries, key=lambda entry: entry.when)
