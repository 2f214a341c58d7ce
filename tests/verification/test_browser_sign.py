"""A person signs their consent on the phone, then verifies in the same visit (a real mobile
browser): the invitation page shows the exact text and the terms, the person confirms each
notice, types their name, draws a signature and signs; then "Start verification" leads to the
sandbox's phone page and back. With ``SAVE_SCREENSHOTS=1`` the pages go to ``docs/screenshots/``.
"""

from __future__ import annotations

import hashlib
import io

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from consent.models import ConsentRecord, ConsentSignature, Language
from mail.models import OutboundEmail
from tests.consent.esign_helpers import CHINESE_TEXT, draft_awaiting_signature, published_version
from tests.factories import UserFactory
from tests.verification.test_browser_verify import (  # the same phone and sandbox
    IPHONE,
    complete_on_sandbox_page,
    confirm_queued,
    phone,
    screenshot,
    upstream,
)
from verification.models import VerificationSession
from verification.services import invitations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["phone", "upstream"]  # fixtures


def test_a_person_signs_on_the_phone_then_verifies_in_the_same_visit(upstream, phone: Page, queued):
    record = draft_awaiting_signature()
    invitation = invitations.invitation_create(
        person=record.person, consent=record, created_by=UserFactory(first_name="Maya"),
        send_email=False,
    )  # fmt: skip
    link = invitations.invitation_url(invitation)

    phone.goto(link)
    expect(phone.get_by_role("heading", name="Hello Ada")).to_be_visible()
    expect(phone.locator("#consent-text")).to_contain_text("Biometric data notice: a face scan")
    expect(phone.locator("#signing-terms")).to_contain_text("Spring campaign 2027")
    expect(phone.get_by_role("button", name="Start verification")).to_have_count(0)
    screenshot(phone, "sign-page")

    phone.get_by_label("Biometric data notice").check()
    phone.get_by_label("Retention and destruction policy").check()
    phone.get_by_label("Type your full legal name").fill("Ada Moreau")
    pad = phone.locator("#sign-pad").bounding_box()
    assert pad is not None
    phone.mouse.move(pad["x"] + 20, pad["y"] + 80)
    phone.mouse.down()
    for step in range(1, 12):
        phone.mouse.move(pad["x"] + 20 + step * 25, pad["y"] + 80 - (step % 3) * 25)
    phone.mouse.up()
    screenshot(phone, "sign-filled")
    phone.get_by_role("button", name="Sign", exact=True).click()

    expect(phone.locator("#signed-notice")).to_contain_text("your consent is signed")
    screenshot(phone, "signed-then-verify")
    record.refresh_from_db()
    assert record.status == ConsentRecord.Status.PENDING_REVIEW
    signature = ConsentSignature.objects.get(consent=record)
    assert signature.user_agent == IPHONE and signature.drawn_signature.startswith("data:image/png")
    with record.signed_document.open("rb") as stored:
        pdf = PdfReader(io.BytesIO(stored.read()))
    text = pdf.attachments["consent-text.txt"][0]
    assert hashlib.sha256(text).hexdigest() == record.template_version.sha256
    assert OutboundEmail.objects.filter(kind="consent_signed", to=record.person.email).exists()

    # Step 2, in the same visit: verification.
    phone.get_by_role("button", name="Start verification").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")
    complete_on_sandbox_page(phone)
    phone.wait_for_url(f"{upstream.url}/verify/callback/**")
    assert confirm_queued(queued) == ["confirmed"]
    expect(phone.locator("#verify-done")).to_be_visible()
    invitation.refresh_from_db()
    assert invitation.status == VerificationSession.Status.VERIFIED


def test_a_person_signs_in_traditional_chinese(upstream, phone: Page, queued):
    version = published_version(text=CHINESE_TEXT, language=Language.CHINESE_TRADITIONAL)
    record = draft_awaiting_signature(version, preferred_language=Language.CHINESE_TRADITIONAL)
    invitation = invitations.invitation_create(
        person=record.person, consent=record, created_by=None, send_email=False
    )

    phone.goto(invitations.invitation_url(invitation))
    expect(phone.locator("#consent-text")).to_contain_text("肖像授權書")
    expect(phone.locator("#signing-terms")).to_contain_text("預期用途")
    phone.get_by_label("生物特徵資料告知").check()
    phone.get_by_label("保存與銷毀政策").check()
    phone.get_by_label("輸入您的法定全名").fill("Ada Moreau")
    screenshot(phone, "sign-page-zh-hant")
    phone.get_by_role("button", name="簽署", exact=True).click()

    expect(phone.locator("#signed-notice")).to_contain_text("您的同意書已簽署")
    record.refresh_from_db()
    assert record.status == ConsentRecord.Status.PENDING_REVIEW
    assert record.signature.text_sha256 == version.sha256
