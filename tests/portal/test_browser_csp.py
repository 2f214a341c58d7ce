"""The Content-Security-Policy in Chromium: the admin and the phone page work under it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.factories import AssetFactory, AssetGroupFactory, PersonFactory, UserFactory
from upstream import AnyfastClient, NullRateLimiter

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


class Violations:
    """Every CSP violation Chromium reports on a page, from its console."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._seen)

    def _seen(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.messages.append(message.text)


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1000}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_the_admin_sends_a_policy_and_its_scripts_and_styles_still_run(page: Page):
    violations = Violations(page)
    UserFactory(username="onboarding", superuser=True)
    person = PersonFactory(legal_name="Ada Example")
    AssetFactory(active=True, group=AssetGroupFactory(person=person))

    response = page.goto("/admin/login/")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    page.fill("#id_username", "onboarding")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")  # the login form works through django-axes
    expect(page.locator("#site-name")).to_have_text("Talent Consent Portal")

    for path in (
        "/admin/",
        "/admin/consent/person/",
        f"/admin/consent/person/{person.pk}/change/",
        "/admin/assets/asset/",
        "/admin/auth/user/",
    ):
        page.goto(path)
        expect(page.locator("#content")).to_be_visible()
    # The admin's own scripts ran: the date shortcuts and their calendar are built by admin
    # JavaScript files, and the stylesheet coloured the header.
    page.goto("/admin/consent/consentrecord/add/")
    page.get_by_role("link", name="Choose a Date").first.click()
    expect(page.locator(".calendarbox").first).to_be_visible()
    header = page.locator("#header").evaluate("e => getComputedStyle(e).backgroundColor")
    assert header not in ("rgba(0, 0, 0, 0)", "transparent")

    assert violations.messages == []


def test_the_phone_page_runs_its_own_inline_script_and_style_by_nonce(
    browser: Browser, settings, live_server
):
    settings.PORTAL_PUBLIC_URL = live_server.url
    settings.ANYFAST_BASE_URL = f"{live_server.url}/sandbox"
    started = AnyfastClient(rate_limiter=NullRateLimiter()).create_visual_validate_session(
        f"{live_server.url}/admin/login/"
    )
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    violations = Violations(phone)

    response = phone.goto(started.h5_link)

    assert response is not None
    assert "'nonce-" in response.headers["content-security-policy"]
    background = phone.locator("body").evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(244, 245, 247)"  # the page's inline <style>
    countdown = phone.locator("#countdown")
    start = int(countdown.inner_text())
    expect(countdown).not_to_have_text(str(start), timeout=5_000)  # the inline script ticks
    assert violations.messages == []
    context.close()
