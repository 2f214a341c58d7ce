"""The person's own page in a real mobile browser: asking for the link, the page, withdrawing.

With ``SAVE_SCREENSHOTS=1`` the pages are saved to ``docs/screenshots/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from assets.models import Withdrawal
from consent.models import ConsentRecord
from mail.models import OutboundEmail
from sandbox.samples import make_image
from tests.factories import (
    AssetGroupFactory,
    ConsentRecordFactory,
    PersonFactory,
    ReferenceCopyFactory,
    UsableAssetFactory,
)
from tests.verification.test_browser_verify import IPHONE, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def phone(browser: Browser) -> Iterator[tuple[Page, list[str]]]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        user_agent=IPHONE,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:  # an inline style or script refused
            problems.append(message.text)

    page.on("console", on_console)
    yield page, problems
    context.close()


def test_a_person_asks_for_their_link_reads_their_page_and_withdraws_in_two_steps(
    live_server, settings, phone, queued
):
    settings.PORTAL_PUBLIC_URL = live_server.url
    settings.LEGAL_NOTIFICATION_EMAIL = "legal@studio.test"
    page, problems = phone
    person = PersonFactory(display_name="Ada", email="ada@example.test")
    record = ConsentRecordFactory(person=person, approved=True, complete=True)
    group = AssetGroupFactory(
        person=person, verified=True, upstream_session__invitation__consent=record
    )
    asset = UsableAssetFactory(
        group=group, consent=record, content=make_image(width=600, height=800, fmt="PNG")
    )
    ReferenceCopyFactory(asset=asset, project="Harbour lights")

    page.goto(f"{live_server.url}/me/")
    page.get_by_label("Your email address").fill("ada@example.test")
    screenshot(page, "person-link-request")
    page.get_by_role("button", name="Send me my link").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    email = OutboundEmail.objects.get(kind="personal_link")
    link = re.search(r"https?://\S+/me/\S+/", email.body_text)
    assert link is not None

    page.goto(link.group(0))
    expect(page.get_by_role("heading", name="Hello Ada")).to_be_visible()
    expect(page.get_by_text("In force")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Verified on \d{4}-"))).to_be_visible()
    expect(page.get_by_role("cell", name="Harbour lights")).to_be_visible()
    preview = page.get_by_role("img", name=f"Preview #{asset.pk}")
    expect(preview).to_be_visible()
    assert preview.evaluate("image => image.naturalWidth") > 0
    screenshot(page, "person-page")

    page.get_by_role("link", name="Withdraw my consent").click()
    expect(page.get_by_text("it cannot be undone")).to_be_visible()
    screenshot(page, "person-withdraw")
    page.get_by_label("I understand that this cannot be undone.").check()
    page.get_by_role("button", name="Yes, withdraw my consent").click()

    expect(page.get_by_text(re.compile(r"Withdrawn on \d{4}-\d{2}-\d{2}"))).to_be_visible()
    expect(page.get_by_text("in progress: 0 of 2 deletions confirmed")).to_be_visible()
    expect(page.get_by_role("link", name="Withdraw my consent")).to_have_count(0)
    expect(page.get_by_text("no longer used, being deleted")).to_be_visible()
    screenshot(page, "person-page-withdrawn")
    record.refresh_from_db()
    assert record.status == ConsentRecord.Status.REVOKED
    assert Withdrawal.objects.filter(consent=record).exists()
    assert OutboundEmail.objects.filter(kind="consent_withdrawn", to="ada@example.test").exists()
    assert problems == []
