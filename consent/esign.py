"""Electronic signing: the person signs their consent on their invitation page, on the phone.

A draft captured by ``e_signature`` that picked a published template version waits for the
person's signature (``ConsentRecord.awaiting_signature``). Their invitation page shows the exact
text of that version with the specific terms (``signing_terms``); the person confirms each notice,
types their full legal name (and may draw a signature) and signs. ``consent_esign`` then, in one
transaction: renders the signed PDF with its consent receipt (``consent.signed_pdf``), stores it
as the record's signed document, keeps the evidence (``ConsentSignature``: time, address, user
agent, invitation, hashes), submits the record for review as the person's, and emails them the
copy. The signature is the written release verification needs, so verification may follow at
once (``ConsentRecordQuerySet.backing_verification``); uploads still wait for approval.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import unicodedata
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext

from audit.services import audit_record
from consent.models import (
    ConsentRecord,
    ConsentSignature,
    TemplateField,
    TemplateNotice,
    consent_text_sha256,
    django_language,
)
from consent.services import consent_problems, consent_submit_signed
from consent.signed_pdf import (
    DrawingRefused,
    SignedPdfUnavailable,
    consent_receipt,
    drawing_png,
    render_signed_pdf,
)
from mail.services import email_queue, render_email
from verification.models import VerificationSession

PERSON = "person (invitation link)"
SIGNED_COPY_NAME = "signed-consent.pdf"


class SigningRefused(Exception):
    """The signature cannot be taken; ``code`` says why (the page words it for the person)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def signing_terms(record: ConsentRecord) -> list[tuple[str, str]]:
    """The terms the person signs beside the text: specific uses, territory, period, what is
    prohibited; in the order the page and the PDF show them (labels in the active language)."""
    end = (
        f"{record.expires_on:%Y-%m-%d}"
        if record.expires_on
        else gettext("no end date (until withdrawn)")
    )
    terms = [
        (
            gettext("Use %(number)s: %(project)s") % {"number": number, "project": use.project},
            f"{use.medium}; {use.channels}; {use.territory}; {use.languages}. {use.description}",
        )
        for number, use in enumerate(record.uses.all(), start=1)
    ]
    terms += [
        (gettext("Intended uses"), record.intended_uses),
        (gettext("Likeness covered"), ", ".join(record.likeness_elements())),
        (gettext("Media covered"), ", ".join(record.media_types())),
        (gettext("Territory"), record.territory),
        (gettext("Period"), f"{record.starts_on:%Y-%m-%d} – {end}"),  # noqa: RUF001
        (gettext("Prohibited uses"), record.prohibited_uses),
        (gettext("Permitted alterations"), record.permitted_alterations),
        (
            gettext("Model training"),
            gettext("allowed") if record.allows_model_training else gettext("not allowed"),
        ),
    ]
    return terms


def terms_digest(record: ConsentRecord) -> str:
    """SHA-256 of the text's hash and the terms (in English, whatever the page's language):
    what the page showed, checked again on signing."""
    with translation.override("en"):
        shown = {"text": record.consent_text_sha256, "terms": signing_terms(record)}
    return hashlib.sha256(json.dumps(shown, ensure_ascii=False).encode("utf-8")).hexdigest()


def esign_problems(record: ConsentRecord) -> list[str]:
    """What stops a draft awaiting signature from being signed (staff must fix it first): what
    review needs, except what the signature itself brings (the document, the notices)."""
    if not record.awaiting_signature:
        return ["it is not a draft awaiting an electronic signature"]
    signed = copy.copy(record)
    signed.signed_document = SIGNED_COPY_NAME  # type: ignore[assignment]  # on the copy only
    signed.biometric_notice_accepted = True
    return consent_problems(signed)


def _same_name(typed: str, legal: str) -> bool:
    def norm(name: str) -> str:
        return " ".join(unicodedata.normalize("NFKC", name).casefold().split())

    return bool(norm(typed)) and norm(typed) == norm(legal)


def consent_esign(
    *,
    invitation: VerificationSession,
    typed_name: str,
    notices_confirmed: list[str],
    digest: str,
    drawing: str = "",
    ip_address: str | None = None,
    user_agent: str = "",
) -> ConsentSignature:
    """The person signs the consent their open ``invitation`` carries (see the module docstring).

    ``digest`` is ``terms_digest`` as the page showed it: a change since refuses (``changed``).
    """
    with transaction.atomic():
        if invitation.consent_id is None:
            raise SigningRefused("unavailable", "This invitation carries no consent.")
        record = ConsentRecord.objects.select_for_update().get(pk=invitation.consent_id)
        invitation.refresh_from_db()
        if not invitation.is_open or not record.awaiting_signature:
            raise SigningRefused("unavailable", "This consent cannot be signed now.")
        version = record.template_version
        assert version is not None  # awaiting_signature
        if digest != terms_digest(record):
            raise SigningRefused("changed", "The consent changed since the page was shown.")
        if esign_problems(record):
            raise SigningRefused("unavailable", "; ".join(esign_problems(record)))
        if not set(version.notices) <= set(notices_confirmed):
            raise SigningRefused("notices", "Every notice must be confirmed.")
        if not _same_name(typed_name, record.person.legal_name):
            raise SigningRefused("name", "The typed name is not the person's full legal name.")
        if TemplateField.DRAWN_SIGNATURE in version.required_fields and not drawing:
            raise SigningRefused("drawing", "This consent needs a drawn signature.")
        try:
            png = drawing_png(drawing) if drawing else None
        except DrawingRefused as exc:
            raise SigningRefused("drawing", str(exc)) from exc
        if consent_text_sha256(version.text) != version.sha256:
            raise SigningRefused("unavailable", f"{version}'s text does not match its hash.")
        now = timezone.now()
        receipt_id = uuid.uuid4()
        notices = [str(TemplateNotice(code).label) for code in version.notices]
        receipt = consent_receipt(
            receipt_id=receipt_id,
            signed_at=now,
            person=record.person,
            language=version.language,
            template_label=str(version),
            text_sha256=version.sha256,
            purposes=[{"purpose": f"{label}: {value}", "purposeCategory": label}
                      for label, value in signing_terms(record) if value],
            notices=notices,
            expires_on=record.expires_on,
            policy_url=settings.PORTAL_PUBLIC_URL,
        )  # fmt: skip
        digest_now = terms_digest(record)
        evidence = [
            ("Signed at (UTC)", now.astimezone(datetime.UTC).isoformat()),
            ("Signed by", typed_name.strip()),
            ("IP address", ip_address or "unknown"),
            ("User agent", user_agent[:500] or "unknown"),
            ("Invitation", f"#{invitation.pk} ({invitation.display_code})"),
            ("Consent text", str(version)),
            ("Consent text SHA-256", version.sha256),
            ("Terms SHA-256", digest_now),
            ("Notices confirmed", "; ".join(notices)),
            ("Consent receipt", f"{receipt_id} (embedded: consent-receipt.json)"),
        ]
        try:
            with translation.override(django_language(version.language)):
                pdf = render_signed_pdf(
                    title=f"{settings.PORTAL_ORGANISATION_NAME}: {version}",
                    text=version.text,
                    terms=signing_terms(record),
                    typed_name=typed_name.strip(),
                    drawing=png,
                    evidence=evidence,
                    receipt=receipt,
                )
        except SignedPdfUnavailable as exc:
            raise SigningRefused("unavailable", str(exc)) from exc
        record.signed_document = ContentFile(pdf, name=SIGNED_COPY_NAME)  # type: ignore[assignment]
        stored = record.signed_document
        stored.save(stored.name, stored.file, save=False)
        ConsentRecord.objects.filter(pk=record.pk, status=record.status).update(
            signed_document=stored.name,
            biometric_notice_accepted=TemplateNotice.BIOMETRIC in notices_confirmed,
            retention_policy_accepted=TemplateNotice.RETENTION in notices_confirmed,
            updated_at=now,
        )
        record.refresh_from_db()
        signature = ConsentSignature.objects.create(
            consent=record,
            template_version=version,
            invitation=invitation,
            signed_at=now,
            ip_address=ip_address or None,
            user_agent=user_agent[:500],
            typed_name=typed_name.strip(),
            drawn_signature=drawing,
            notices_confirmed=sorted(set(notices_confirmed) & set(version.notices)),
            text_sha256=version.sha256,
            terms_sha256=digest_now,
            document_sha256=hashlib.sha256(pdf).hexdigest(),
            receipt=receipt,
        )
        audit_record(
            action="consent.signed_electronically",
            obj=record,
            actor_label=PERSON,
            person_id=record.person_id,
            detail={
                "invitation": invitation.pk,
                "template_version": version.pk,
                "text_sha256": version.sha256,
                "terms_sha256": digest_now,
                "document_sha256": signature.document_sha256,
                "ip_address": ip_address,
                "user_agent": user_agent[:200],
                "receipt_id": str(receipt_id),
                "drawn": bool(drawing),
            },
        )
        consent_submit_signed(record=record, actor_label=PERSON)
        _email_signed_copy(record, signature)
    return signature


def _email_signed_copy(record: ConsentRecord, signature: ConsentSignature) -> None:
    """Email the person their signed copy (the PDF, receipt inside), when they have an address."""
    person = record.person
    if not person.email:
        return
    subject, text, html = render_email(
        "consent/email/consent_signed",
        {
            "organisation": settings.PORTAL_ORGANISATION_NAME,
            "person": person,
            "consent": record,
            "signature": signature,
        },
        language=django_language(person.preferred_language),
    )
    email_queue(
        kind="consent_signed",
        to=person.email,
        subject=subject,
        text=text,
        html=html,
        about=record,
        person_id=person.pk,
        language=person.preferred_language,
        attachment=str(record.signed_document.name),
        attachment_name=SIGNED_COPY_NAME,
    )
