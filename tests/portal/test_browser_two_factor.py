"""Two-step sign-in in a real browser: a superuser's first sign-in sets up an authenticator app."""

from __future__ import annotations

from base64 import b32decode
from collections.abc import Iterator

import pytest
from django_otp.oath import totp
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_a_superuser_sets_up_an_app_at_the_first_sign_in_and_gets_recovery_codes(
    page: Page, tmp_path
):
    refused: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("console", console)
    UserFactory(username="root", superuser=True)

    page.goto("/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    expect(page).to_have_url(f"{page.url.split('/admin/')[0]}/admin/login/enrol/?next=%2Fadmin%2F")
    qr = page.locator("svg.qr-code")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None and 180 <= box["width"] <= 240  # sized by the portal's stylesheet
    page.screenshot(path=tmp_path / "enrol.png", full_page=True)
    # The key shown for typing in is the one the app would use.
    secret = page.locator("code.two-factor-secret").inner_text()
    key = b32decode(secret.replace(" ", ""))

    page.fill("#id_otp_token", f"{totp(key):06d}")
    page.click("input[type=submit]")

    expect(page.locator(".two-factor-done")).to_have_text("Two-step sign-in is on.")
    expect(page.locator("ul.recovery-codes li")).to_have_count(10)
    page.screenshot(path=tmp_path / "recovery-codes.png", full_page=True)
    page.click("text=Continue to the admin")
    expect(page.locator("#site-name")).to_have_text("Talent Consent Portal")
    expect(page.locator("#user-tools")).to_contain_text("root")
    assert refused == []
