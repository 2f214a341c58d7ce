"""The sandbox's phone page in a real mobile-sized browser, driven through the real client."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect

from upstream import AnyfastClient, NullRateLimiter

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def upstream(settings, live_server) -> AnyfastClient:
    settings.PORTAL_PUBLIC_URL = live_server.url
    settings.ANYFAST_BASE_URL = f"{live_server.url}/sandbox"
    return AnyfastClient(rate_limiter=NullRateLimiter())


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_person_completes_verification_on_the_phone_and_lands_on_the_callback(
    upstream: AnyfastClient, phone: Page, live_server
):
    callback = f"{live_server.url}/admin/login/?from=verification"
    started = upstream.create_visual_validate_session(callback)
    assert not upstream.get_visual_validate_result(started.byted_token).is_complete

    phone.goto(started.h5_link)
    expect(phone.get_by_role("heading", name="Real-person verification (sandbox)")).to_be_visible()
    expect(phone.get_by_text(f"…{started.byted_token[-6:]}")).to_be_visible()
    phone.get_by_label("grace").check()
    phone.get_by_role("button", name="Complete").click()
    phone.wait_for_url(f"{live_server.url}/admin/login/**")

    landed = parse_qs(urlsplit(phone.url).query)
    assert landed["from"] == ["verification"]
    assert landed["bytedToken"] == [started.byted_token]
    assert landed["resultCode"] == ["10000"]
    assert landed["verify_type"] == ["real_time"]
    result = upstream.get_visual_validate_result(started.byted_token)
    assert result.is_complete and result.group_id.startswith("group-")

    # The H5 link works once: opening it again shows why it no longer does.
    response = phone.goto(started.h5_link)
    assert response is not None and response.status == 410
    expect(phone.get_by_text("This link has expired or was already used")).to_be_visible()


def test_a_failed_verification_redirects_with_another_result_code_and_makes_no_group(
    upstream: AnyfastClient, phone: Page, live_server
):
    started = upstream.create_visual_validate_session(f"{live_server.url}/admin/login/")
    phone.goto(started.h5_link.replace("lng=en", "lng=zh-Hant"))
    expect(phone.get_by_role("heading", name="真人認證（沙盒）")).to_be_visible()  # noqa: RUF001

    phone.get_by_role("button", name="失敗").click()
    phone.wait_for_url(f"{live_server.url}/admin/login/**")

    assert parse_qs(urlsplit(phone.url).query)["resultCode"] != ["10000"]
    assert not upstream.get_visual_validate_result(started.byted_token).is_complete
