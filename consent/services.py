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
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from assets.models import WithdrawalReason
from assets.services.withdrawals import assets_reassign_consent, withdrawal_start
from audit.services import acting_user, audit_record, snapshot
from consent.models import (
    ConsentRecord,
    ConsentStatus,
    ConsentUse,
    Language,
    Person,
    RevocationChannel,
    django_language,
    personal_link_issue,
)
from mail.models import OutboundEmail
from mail.services import email_queue, render_email
from verification.models import VerificationSession
from verification.services.invitations import invitation_cancel

logger = logging.getLogger(__name__)

User = AbstractBaseUser | AnonymousUser | None


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
    version = record.template_version
    if version is not None and (
        not version.is_published or record.consent_text_sha256 != version.sha256
    ):
        problems.append(f"the consent text does not match the published version {version}")
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
    reviewer = acting_user(actor)
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
        record, "submit", actor=actor, submitted_by=acting_user(actor), submitted_at=timezone.now()
    )


def consent_submit_signed(*, record: ConsentRecord, actor_label: str) -> ConsentRecord:
    """Send a draft the person just signed electronically to review: the person submits it (no
    staff member), so under four eyes any reviewer may decide on it."""
    problems = consent_problems(record)
    if problems:
        raise ConsentIncomplete(record, problems)
    return _transition(
        record,
        "submit",
        actor=None,
        actor_label=actor_label,
        submitted_by=None,
        submitted_at=timezone.now(),
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
            reviewed_by=acting_user(actor),
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
            reviewed_by=acting_user(actor),
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
    actor_label: str = "",
) -> ConsentRecord:
    """Record that the person revoked an approved consent: it ends now, for every use, and its
    likeness is withdrawn upstream.

    ``actor_label`` names who acted when no staff member did (the person, on their page)."""
    if channel not in RevocationChannel.values:
        raise ConsentTransitionError("Say how the person revoked their consent.")
    if not reason.strip():
        raise ConsentTransitionError("Record the reason the person gave, or “none given”.")
    now = timezone.now()
    if requested_at is not None and requested_at > now:
        raise ConsentTransitionError("The revocation cannot have been asked for in the future.")
    with transaction.atomic():
        revoked = _transition(
            record,
            "revoke",
            actor=actor,
            actor_label=actor_label,
            revoked_at=now,
            revoked_by=acting_user(actor),
            revocation_channel=channel,
            revocation_requested_at=requested_at or now,
            revocation_reason=reason.strip(),
            ended_at=now,
        )
        # In the same transaction: the consent never ends without its withdrawal upstream.
        withdrawal_start(
            consent_id=revoked.pk,
            reason=WithdrawalReason.REVOKED,
            requested_by=actor,
            requested_by_label=actor_label,
        )
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
    context = _expiry_warning_context(record)
    emails = []
    for to, template, language in recipients:
        if template == "consent_expiry_warning":  # the person's own: with their page's link
            link = personal_link_issue(person=person, sent_for=template)
            rendered = {**context, "personal_link": link}
        else:
            rendered = context
        subject, text, html = render_email(
            f"consent/email/{template}", rendered, language=django_language(language)
        )
        emails.append(
            email_queue(
                kind=template,
                to=to,
                subject=subject,
                text=text,
                html=html,
                about=record,
                person_id=record.person_id,
                language=language,
            )
        )
    return emails


def _expiry_warning_context(record: ConsentRecord) -> dict[str, Any]:
    """What the templates of a warning that ``record`` ends soon read."""
    return {
        "organisation": settings.PORTAL_ORGANISATION_NAME,
        "person": record.person,
        "consent": record,
        "days_left": (record.expires_on - timezone.localdate()).days if record.expires_on else None,
        "retention_days": settings.BIOMETRIC_RETENTION_DAYS,
        "consent_url": settings.PORTAL_PUBLIC_URL
        + reverse("admin:consent_consentrecord_change", args=[record.pk]),
    }


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
        version = ConsentRecord.objects.create(
            **copied, supersedes=record, created_by=acting_user(actor)
        )
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
