"""The person's own page, its workflows: links asked for and opened, consent withdrawn online.

GDPR Art. 7(3): withdrawing consent must be as easy as giving it. A person reaches their page
through a personal link (``consent.models.PersonalLink``: random token, kept hashed, expiring,
revocable), which every email they receive carries and which they can ask for again by address.
Withdrawing there is legal's "Revoke consent" (``consent_revoke``) with the channel "online" and
the person as the actor; legal and the person are emailed, producers by the withdrawal itself.
Each function is keyword-only, atomic, and writes its audit event in the same transaction.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_record
from consent.models import (
    ConsentRecord,
    ConsentStatus,
    Language,
    Person,
    PersonalLink,
    PersonalLinkQuerySet,
    RevocationChannel,
    django_language,
    personal_link_issue,
    personal_token_digest,
)
from consent.services import consent_revoke
from mail.models import OutboundEmail
from mail.services import email_queue, render_email
from portal.roles import LEGAL

# Who acted, in audit events and on the consent record, when the person did on their page.
THE_PERSON = "the person"
# A link's use is recorded at most this often (each page view would flood the trail).
USE_RECORDED_EVERY = datetime.timedelta(hours=1)
# At most this many people share one address: each gets their own link.
MAX_PEOPLE_PER_ADDRESS = 5


def personal_link_find(*, token: str) -> PersonalLink | None:
    """The usable link ``token`` opens (not revoked, not expired), or None; records its use."""
    link = (
        PersonalLink.objects.usable()
        .select_related("person")
        .filter(token_sha256=personal_token_digest(token))
        .first()
    )
    if link is None:
        return None
    now = timezone.now()
    with transaction.atomic():
        first_in_a_while = PersonalLink.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - USE_RECORDED_EVERY),
            pk=link.pk,
        ).update(last_used_at=now)
        if first_in_a_while:
            audit_record(
                action="personal_link.used",
                obj=link,
                actor_label=THE_PERSON,
                person_id=link.person_id,
                detail={"sent_for": link.sent_for, "expires_at": link.expires_at},
            )
    return link


@transaction.atomic
def personal_link_send(*, email: str) -> list[OutboundEmail]:
    """Email a new personal link to each person whose address is ``email`` (none if unknown).

    The caller answers the same whatever this returns: whether an address is known is never
    told to whoever asks.
    """
    people = Person.objects.filter(email__iexact=email.strip()).order_by("pk")
    emails = []
    for person in people[:MAX_PEOPLE_PER_ADDRESS]:
        sent = _queue_person_email(person, "personal_link", {}, sent_for="link_request")
        audit_record(
            action="personal_link.sent",
            obj=person,
            actor_label="link request (anonymous)",
            person_id=person.pk,
            detail={"email_id": sent.pk, "to": sent.to},
        )
        emails.append(sent)
    return emails


@transaction.atomic
def personal_links_revoke(*, links: PersonalLinkQuerySet, actor: Any) -> int:
    """Switch off ``links`` at once (a mailbox lost, a link forwarded); how many were usable."""
    now = timezone.now()
    ended = list(links.usable(now).select_for_update())
    PersonalLink.objects.filter(pk__in=[link.pk for link in ended], revoked_at__isnull=True).update(
        revoked_at=now
    )
    for link in ended:
        audit_record(
            action="personal_link.revoked",
            obj=link,
            actor=actor,
            person_id=link.person_id,
            detail={"sent_for": link.sent_for},
        )
    return len(ended)


def withdrawable(record: ConsentRecord) -> bool:
    """Whether the person may withdraw ``record`` on their page (approved: in force or to come)."""
    return record.status == ConsentStatus.APPROVED


@transaction.atomic
def consent_withdraw_by_person(
    *, link: PersonalLink, record: ConsentRecord, reason: str = ""
) -> ConsentRecord:
    """The person withdrew ``record`` on their page: revoked exactly as legal's "Revoke consent"
    (it ends now, its withdrawal upstream starts, producers are told by it), channel "online".

    Legal and the person are emailed; raises ``ConsentTransitionError`` when it is not approved.
    """
    if record.person_id != link.person_id:
        raise PermissionError("This consent is another person's.")
    revoked = consent_revoke(
        record=record,
        actor=None,
        actor_label=THE_PERSON,
        channel=RevocationChannel.ONLINE,
        reason=reason.strip() or "None given (withdrawn by the person on their page).",
        requested_at=timezone.now(),
    )
    context = {"consent": revoked, "withdrawal": getattr(revoked, "withdrawal", None)}
    confirmation = None
    if revoked.person.email:
        confirmation = _queue_person_email(
            revoked.person, "consent_withdrawn", context, sent_for="withdrawal_confirmation"
        )
    legal = _queue_legal_emails(revoked)
    audit_record(
        action="consent.withdrawn_by_person",
        obj=revoked,
        actor_label=THE_PERSON,
        person_id=revoked.person_id,
        detail={
            "via": "personal link",
            "link_id": link.pk,
            "confirmation_email_id": confirmation.pk if confirmation else None,
            "legal_emails": [{"id": email.pk, "to": email.to} for email in legal],
        },
    )
    return revoked


def legal_addresses() -> list[str]:
    """``LEGAL_NOTIFICATION_EMAIL``, or else the addresses of the Legal group's active members."""
    if settings.LEGAL_NOTIFICATION_EMAIL:
        return [settings.LEGAL_NOTIFICATION_EMAIL]
    members = get_user_model().objects.filter(groups__name=LEGAL.name, is_active=True)
    return sorted({user.email for user in members.exclude(email="")})


def _queue_person_email(
    person: Person, template: str, context: dict[str, Any], *, sent_for: str
) -> OutboundEmail:
    """An email to ``person`` in their language, carrying a new personal link."""
    full = {
        **context,
        "organisation": settings.PORTAL_ORGANISATION_NAME,
        "person": person,
        "personal_link": personal_link_issue(person=person, sent_for=sent_for),
        "link_days": settings.PERSONAL_LINK_TTL_DAYS,
    }
    subject, text, html = render_email(
        f"consent/email/{template}", full, language=django_language(person.preferred_language)
    )
    return email_queue(
        kind=template,
        to=person.email,
        subject=subject,
        text=text,
        html=html,
        about=person,
        person_id=person.pk,
        language=person.preferred_language,
    )


def _queue_legal_emails(record: ConsentRecord) -> list[OutboundEmail]:
    context = {
        "organisation": settings.PORTAL_ORGANISATION_NAME,
        "person": record.person,
        "consent": record,
        "consent_url": settings.PORTAL_PUBLIC_URL
        + reverse("admin:consent_consentrecord_change", args=[record.pk]),
    }
    subject, text, html = render_email(
        "consent/email/consent_withdrawn_legal", context, language="en"
    )
    return [
        email_queue(
            kind="consent_withdrawn_legal",
            to=address,
            subject=subject,
            text=text,
            html=html,
            about=record,
            person_id=record.person_id,
            language=Language.ENGLISH,
        )
        for address in legal_addresses()
    ]
