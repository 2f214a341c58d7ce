"""The admin in a real browser: Debian's Chromium driven by Playwright against a live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.factories import (
    AssetGroupFactory,
    UsableAssetFactory,
    UserFactory,
    VerificationSessionFactory,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1000}
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _log_in(page: Page) -> None:
    UserFactory(username="onboarding", superuser=True)
    page.goto("/admin/login/")
    page.fill("#id_username", "onboarding")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("Talent Consent Portal")


def test_staff_add_a_person_and_see_consents_sessions_groups_and_assets(page: Page, tmp_path):
    _log_in(page)

    page.goto("/admin/consent/person/add/")
    page.fill("#id_legal_name", "Hedy Example")
    page.fill("#id_email", "hedy@talent.test")
    page.click("input[name=_save]")
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    expect(page.locator("#result_list")).to_contain_text("Hedy Example")

    # Verification and uploads are later services: their rows are made directly here.
    session = VerificationSessionFactory(person__legal_name="Ada Example")
    asset = UsableAssetFactory(group=AssetGroupFactory(person=session.person))
    page.goto("/admin/consent/person/")
    page.click("text=Ada Example")

    for heading in ("Consent records", "Invitations", "Asset groups"):
        expect(page.locator(".inline-group h2", has_text=heading)).to_be_visible()
    expect(page.locator("table.asset-list")).to_contain_text(asset.asset_uri)
    copy_button = page.locator(f'.copy-button[data-copy="{asset.asset_uri}"]')
    expect(copy_button).to_be_visible()
    copy_button.click()
    expect(copy_button).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == asset.asset_uri
    page.screenshot(path=tmp_path / "person.png", full_page=True)

    page.goto("/admin/assets/asset/")
    expect(page.locator("#result_list .copy-button")).to_have_count(1)
    # The admin's own stylesheet loaded: the header has its colour, not the browser default.
    header_colour = page.locator("#header").evaluate("e => getComputedStyle(e).backgroundColor")
    assert header_colour not in ("rgba(0, 0, 0, 0)", "transparent")
    badge_colour = page.locator(".status-badge").first.evaluate(
        "e => getComputedStyle(e).backgroundColor"
    )
    assert badge_colour == "rgb(220, 245, 227)"  # the green of an active asset
    page.screenshot(path=tmp_path / "asset-changelist.png", full_page=True)
