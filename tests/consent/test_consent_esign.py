"""Electronic signing on the invitation page: the evidence kept, the signed PDF (its text's hash
is the template version's), the copy emailed, the record sent to review; verification may follow
at once, uploads still wait for legal's approval."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.core import mail
from django.urls import reverse
from pypdf import PdfReader

from assets.services.gate import consent_for_upload
from audit.models import AuditEvent
from consent import services
from consent.esign import terms_digest
from consent.evidence import collect_evidence
from consent.models import ConsentRecord, ConsentSignature, Language
from consent.signed_pdf import CJK_FONTS
from mail import tasks as mail_tasks
from mail.models import OutboundEmail
from tests.conftest import unavailable
from tests.consent.esign_helpers import CHINESE_TEXT, draft_awaiting_signature, published_version
from tests.factories import UserFactory
from verification.models import VerificationSession
from verification.services import invitations, sessions

pytestmark = pytest.mark.django_db
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1"


@pytest.fixture
def invited(queued):
    record = draft_awaiting_signature()
    invitation = invitations.invitation_create(
        person=record.person, consent=record, created_by=UserFactory(), send_email=False
    )
    return invitation


def sign(client, invitation, **overrides):
    record = invitation.consent
    data = {
        "typed_name": "ada  MOREAU",
        "notices": ["biometric", "retention"],
        "digest": terms_digest(record),
        "lang": "en",
        **overrides,
    }
    return client.post(
        reverse("verify:sign", args=[invitation.invitation_token]),
        data,
        HTTP_USER_AGENT=PHONE,
    )


def attachments(pdf: bytes) -> dict[str, bytes]:
    return {name: contents[0] for name, contents in PdfReader(io.BytesIO(pdf)).attachments.items()}


def test_an_e_signature_draft_can_be_invited_but_not_verified_before_it_is_signed(invited):
    assert invited.consent.awaiting_signature
    with pytest.raises(invitations.InvitationUnavailable, match="not in force"):
        sessions.upstream_session_start(invitation=invited, purpose="phone")


def test_the_invitation_page_shows_the_exact_text_and_the_terms_to_sign(client, invited):
    response = client.get(reverse("verify:invitation", args=[invited.invitation_token]))
    page = response.content.decode()
    version = invited.consent.template_version
    assert "Biometric data notice: a face scan" in page and version.sha256 in page
    assert "Spring campaign 2027" in page  # the specific use
    assert "Political, adult or endorsement content." in page
    assert "Start verification" not in page


def test_signing_keeps_the_evidence_renders_the_pdf_and_sends_the_record_to_review(
    client, invited, queued
):
    response = sign(client, invited)
    assert response.status_code == 302 and "signed=1" in response["Location"]

    record = ConsentRecord.objects.get(pk=invited.consent_id)
    version = record.template_version
    assert record.status == ConsentRecord.Status.PENDING_REVIEW
    assert record.submitted_by is None and record.submitted_at is not None
    assert record.biometric_notice_accepted and record.retention_policy_accepted
    assert services.consent_problems(record) == []

    signature = ConsentSignature.objects.get(consent=record)
    assert signature.invitation == invited
    assert signature.ip_address == "127.0.0.1" and signature.user_agent == PHONE
    assert signature.typed_name == "ada  MOREAU"
    assert signature.text_sha256 == version.sha256
    assert signature.notices_confirmed == ["biometric", "retention"]

    with record.signed_document.open("rb") as stored:
        pdf = stored.read()
    assert record.signed_document.name.endswith(".pdf")
    assert hashlib.sha256(pdf).hexdigest() == signature.document_sha256
    embedded = attachments(pdf)
    assert hashlib.sha256(embedded["consent-text.txt"]).hexdigest() == version.sha256
    receipt = json.loads(embedded["consent-receipt.json"])
    assert receipt["consentReceiptID"] == signature.receipt["consentReceiptID"]
    assert receipt["notice"]["sha256"] == version.sha256 and receipt["sensitive"] is True
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Biometric data notice" in text and version.sha256 in text and "127.0.0.1" in text

    events = AuditEvent.objects.for_object(record)
    actions = list(events.values_list("action", flat=True))
    assert "consent.signed_electronically" in actions and "consent.submit" in actions

    # The copy goes to the person, the PDF attached.
    email = OutboundEmail.objects.get(kind="consent_signed")
    assert email.to == record.person.email and email.attachment.name == record.signed_document.name
    assert mail_tasks.send_email.apply(args=[email.pk]).get() is None
    (message,) = mail.outbox
    ((name, content, mimetype),) = message.attachments
    assert (name, mimetype) == ("signed-consent.pdf", "application/pdf") and content == pdf
    assert signature.receipt["consentReceiptID"] in message.body

    # The signature is the written release: verification may start now; uploads wait.
    assert ConsentRecord.objects.backing_verification().filter(pk=record.pk).exists()
    assert consent_for_upload(record.person, kind="image") is None
    page = client.get(response["Location"]).content.decode()
    assert "your consent is signed" in page and "Start verification" in page


@pytest.mark.parametrize(
    ("overrides", "shown"),
    [
        ({"typed_name": "Ada"}, "Type your full legal name"),
        ({"notices": ["biometric"]}, "confirm each notice"),
        ({"digest": "0" * 64}, "was changed since you opened"),
        ({"drawing": "data:image/png;base64,AAAA"}, "draw your signature"),
    ],
)
def test_a_signature_is_refused_without_the_name_every_notice_or_the_terms_shown(
    client, invited, overrides, shown
):
    response = sign(client, invited, **overrides)
    assert response.status_code == 400 and shown in response.content.decode()
    record = ConsentRecord.objects.get(pk=invited.consent_id)
    assert record.status == ConsentRecord.Status.DRAFT and not record.signed_document
    assert not ConsentSignature.objects.exists()


def test_rejecting_a_signed_consent_ends_its_invitation(client, invited):
    sign(client, invited)
    record = ConsentRecord.objects.get(pk=invited.consent_id)
    services.consent_reject(record=record, actor=UserFactory(), reason="Wrong territory.")
    invited.refresh_from_db()
    assert invited.status == VerificationSession.Status.CANCELLED


def test_a_chinese_text_is_rendered_and_its_hash_kept(client, queued):
    if not any(font.exists() for font in CJK_FONTS):
        unavailable("no CJK font: apt-get install -y fonts-wqy-microhei (bin/test does)")
    version = published_version(text=CHINESE_TEXT, language=Language.CHINESE_TRADITIONAL)
    record = draft_awaiting_signature(version, preferred_language=Language.CHINESE_TRADITIONAL)
    invitation = invitations.invitation_create(
        person=record.person, consent=record, created_by=None, send_email=False
    )
    response = sign(client, invitation, typed_name="Ada Moreau", lang="zh-hant")
    assert response.status_code == 302
    record.refresh_from_db()
    with record.signed_document.open("rb") as stored:
        pdf = stored.read()
    assert hashlib.sha256(attachments(pdf)["consent-text.txt"]).hexdigest() == version.sha256
    text = PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert "肖像授權書" in text


def test_legal_sees_the_signature_evidence_on_the_record(client, invited, superuser):
    sign(client, invited)
    record = ConsentRecord.objects.get(pk=invited.consent_id)
    client.force_login(superuser)
    page = client.get(f"/admin/consent/consentrecord/{record.pk}/change/").content.decode()
    signature = record.signature
    assert "ada  MOREAU" in page and signature.document_sha256 in page and "127.0.0.1" in page


def test_an_incomplete_e_signature_draft_is_not_sent_to_be_signed(queued):
    record = draft_awaiting_signature()
    record.uses.all().delete()
    with pytest.raises(invitations.VerificationRefused, match="no intended use is described"):
        invitations.invitation_create(
            person=record.person, consent=record, created_by=None, send_email=False
        )
    record.refresh_from_db()
    assert record.awaiting_signature and not record.signed_document


def test_the_evidence_bundle_carries_the_signature(client, invited):
    sign(client, invited)
    evidence = collect_evidence(invited.person)
    (consent,) = evidence["consent_versions"]
    assert consent["electronic_signature"]["text_sha256"] == invited.consent.template_version.sha256
    assert consent["electronic_signature"]["ip_address"] == "127.0.0.1"
