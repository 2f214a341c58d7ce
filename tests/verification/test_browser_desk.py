"""Staff invite and verify a person at the desk, in a real browser (Debian's Chromium through
Playwright) against the live server and the sandbox over real HTTP.

With ``SAVE_SCREENSHOTS=1`` the pages are saved to ``docs/screenshots/`` for the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.factories import ConsentRecordFactory, UserFactory
from tests.verification_helpers import use_sandbox
from verification import admin_views
from verification.models import UpstreamSession, VerificationSession
from verification.services import invitations, sessions

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: the README's folder when asked (SAVE_SCREENSHOTS=1), else away."""
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


@pytest.fixture
def staff(browser: Browser, live_server, settings, tmp_path, queued) -> Iterator[Page]:
    """A superuser logged in to the admin; the sandbox is the upstream; tasks are recorded."""
    use_sandbox(settings, live_server, tmp_path)
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    UserFactory(username="desk", superuser=True, first_name="Maya", last_name="Lind")
    settings.TWO_FACTOR_EXEMPT_USERS = ["desk"]  # its own tests: test_browser_two_factor
    page.goto("/admin/login/")
    page.fill("#id_username", "desk")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("Talent Consent Portal")
    yield page
    context.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _seconds_left(page: Page) -> int:
    return int(page.locator("#desk").get_attribute("data-seconds-left") or "-1")


def _wait_for_a_new_code(page: Page, than: str) -> str:
    """Waits until the desk shows a code of another upstream session than ``than``; its id."""
    page.wait_for_function(
        "previous => { const desk = document.getElementById('desk');"
        " return desk.dataset.state === 'waiting' && desk.dataset.session"
        " && desk.dataset.session !== previous; }",
        arg=than,
    )
    return page.locator("#desk").get_attribute("data-session") or ""


def test_staff_invite_show_the_qr_code_and_verify_the_person_at_the_desk(
    staff: Page, phone: Page, settings, screenshots: Path
):
    consent = ConsentRecordFactory(
        approved=True, person__legal_name="Ada Lovelace", person__display_name="Ada"
    )
    person = consent.person

    # Invite from the person page: the invitation's QR page follows.
    staff.goto(f"/admin/consent/person/{person.pk}/change/")
    staff.get_by_role("button", name="Invite to verify").click()
    expect(staff.locator(".messagelist")).to_contain_text(f"Invited {person}")
    invitation = VerificationSession.objects.get(person=person)
    expect(staff.locator(".qr-page svg.qr-code")).to_be_visible()
    expect(staff.locator(".qr-page")).to_contain_text(invitations.invitation_url(invitation))
    expect(staff.locator(".typed-code")).to_have_text(invitation.display_code)
    staff.screenshot(path=screenshots / "admin-qr-page.png", full_page=True)

    # The invitation page: the same QR code, the link, the code and what staff can do.
    staff.get_by_role("link", name="Back to the invitation").click()
    expect(staff.locator(".invitation-panel svg.qr-code")).to_be_visible()
    expect(staff.locator(".invitation-panel")).to_contain_text(invitation.display_code)
    for button in ("Resend email", "Cancel invitation", "Reissue (new link and code)"):
        expect(staff.get_by_role("button", name=button)).to_be_visible()
    staff.screenshot(path=screenshots / "admin-invitation-page.png", full_page=True)

    # "Verify here now" with short-lived links: the countdown runs and a new code comes by itself.
    settings.ANYFAST_H5_LINK_TTL = settings.SANDBOX_H5_LINK_TTL = 4
    staff.get_by_role("link", name="Verify here now").click()
    first = _wait_for_a_new_code(staff, than="")
    expect(staff.locator(".desk-qr svg.qr-code")).to_be_visible()
    start = _seconds_left(staff)
    assert 1 <= start <= 4
    staff.wait_for_function(f"() => +document.getElementById('desk').dataset.secondsLeft < {start}")
    second = _wait_for_a_new_code(staff, than=first)
    rows = UpstreamSession.objects.filter(invitation=invitation).order_by("pk")
    assert [str(row.pk) for row in rows] == [first, second]
    assert {row.purpose for row in rows} == {UpstreamSession.Purpose.DESK}

    # Links of the real lifetime again: the next code counts down from 120 s.
    settings.ANYFAST_H5_LINK_TTL = settings.SANDBOX_H5_LINK_TTL = 120
    third = _wait_for_a_new_code(staff, than=second)
    assert _seconds_left(staff) >= 115
    expect(staff.locator(".desk-seconds")).to_have_text(re.compile(r"^(1[01]\d|120)$"))
    staff.screenshot(path=screenshots / "admin-desk-page.png", full_page=True)

    # The person scans the code: the sandbox's phone page, as a phone, completes.
    h5_link = staff.locator("#desk").get_attribute("data-h5-link") or ""
    row = UpstreamSession.objects.get(pk=third)
    assert h5_link == row.h5_link
    phone.goto(h5_link)
    phone.get_by_label("ada").check()
    phone.get_by_role("button", name="Complete").click()
    phone.wait_for_url(f"**/verify/callback/{row.public_id}/**")

    # The callback queued a confirmation; the worker's job is played here. The desk turns green.
    sessions.upstream_session_confirm(upstream_session_id=row.pk, force=True)
    expect(staff.locator("#desk")).to_have_attribute("data-state", "verified", timeout=6_000)
    expect(staff.locator(".desk-state")).to_contain_text(f"{person} is verified")
    colour = staff.locator("#desk").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(220, 245, 227)"
    staff.screenshot(path=screenshots / "admin-desk-verified.png", full_page=True)
    codes_when_verified = UpstreamSession.objects.filter(invitation=invitation).count()

    # The invitation page tells the whole story.
    staff.goto(f"/admin/verification/verificationsession/{invitation.pk}/change/")
    timeline = staff.locator("ol.timeline")
    for event in ("Invited", "Upstream session created", "Callback received", "Confirmed"):
        expect(timeline).to_contain_text(event)
    expect(timeline).to_contain_text("Group created")
    expect(timeline).to_contain_text("Verified")
    expect(staff.locator("#upstream_sessions-group")).to_contain_text(f"…{row.byted_token[-6:]}")
    staff.screenshot(path=screenshots / "admin-invitation-timeline.png", full_page=True)
    # Once verified, the desk made no more codes.
    assert UpstreamSession.objects.filter(invitation=invitation).count() == codes_when_verified

    # The person page and the People list say so too.
    staff.goto(f"/admin/consent/person/{person.pk}/change/")
    expect(staff.locator(".timeline-block")).to_contain_text("Group created")
    # Verified: the next step is uploading, no longer inviting.
    expect(staff.get_by_role("link", name="Upload assets")).to_be_visible()
    expect(staff.get_by_role("button", name="Invite to verify")).to_have_count(0)
    staff.goto("/admin/consent/person/")
    staff.locator("#changelist-filter").get_by_role("link", name="Verified").click()
    expect(staff.locator("#result_list tbody tr")).to_have_count(1)
    expect(staff.locator("#result_list")).to_contain_text("Ada Lovelace")


def test_the_desk_stops_after_unused_codes_offers_a_new_one_and_closes_with_the_invitation(
    staff: Page, settings, monkeypatch
):
    monkeypatch.setattr(admin_views, "DESK_AUTO_MINTS", 2)
    settings.ANYFAST_H5_LINK_TTL = settings.SANDBOX_H5_LINK_TTL = 1
    consent = ConsentRecordFactory(approved=True)
    invitation = invitations.invitation_create(
        person=consent.person, consent=consent, created_by=None
    )

    staff.goto(f"/admin/verification/verificationsession/{invitation.pk}/desk/")

    # Two codes ran out unused: the desk waits for staff instead of minting on and on.
    again = staff.get_by_role("button", name="Show a new code")
    expect(again).to_be_visible()
    expect(staff.locator("#desk")).to_have_attribute("data-state", "paused")
    expect(staff.locator(".desk-state")).to_contain_text("No code was used for a while")
    assert invitation.upstream_sessions.count() == 2

    shown = staff.locator("#desk").get_attribute("data-session") or ""
    again.click()
    _wait_for_a_new_code(staff, than=shown)
    assert invitation.upstream_sessions.count() >= 3

    # Cancelled elsewhere: the desk says so by itself and makes no more codes.
    invitations.invitation_cancel(invitation=invitation, by=None)
    expect(staff.locator("#desk")).to_have_attribute("data-state", "closed")
    expect(staff.locator(".desk-state")).to_have_text(
        "This invitation is cancelled: no more codes."
    )
    made = invitation.upstream_sessions.count()
    staff.wait_for_timeout(2_500)  # longer than a code's lifetime and a status poll
    assert invitation.upstream_sessions.count() == made
