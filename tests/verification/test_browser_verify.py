"""The person's whole verification in a real mobile browser: the invitation email, the
invitation page, Start, the sandbox's phone page, the callback page, the confirmation.

The worker's part (sending the email, confirming) runs in the test, by the tasks themselves
(``apply``); ``test_integration_verify`` runs them in a real worker. With ``SAVE_SCREENSHOTS=1``
the pages are saved to ``docs/screenshots/``.
"""

from __future__ import annotations

import datetime
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import time_machine
from django.conf import settings as django_settings
from django.core import mail
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from assets.models import AssetGroup
from mail import tasks as mail_tasks
from mail.models import OutboundEmail
from tests.factories import ConsentRecordFactory, PersonFactory, UserFactory
from tests.verification_helpers import use_sandbox
from verification import tasks as verification_tasks
from verification.models import UpstreamSession, VerificationSession
from verification.services import invitations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(django_settings.BASE_DIR) / "docs" / "screenshots"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
Status = UpstreamSession.Status


@pytest.fixture
def upstream(settings, live_server, tmp_path):
    use_sandbox(settings, live_server, tmp_path)
    return live_server


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        user_agent=IPHONE,
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def screenshot(page: Page, name: str) -> None:
    """Saved for the README only when asked (SAVE_SCREENSHOTS=1): normal runs leave no files."""
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def invite_by_email(queued, language: str = "en") -> tuple[VerificationSession, str]:
    """Staff invite a person; the worker sends the email; the link in the captured email."""
    person = PersonFactory(display_name="Ada", legal_name="Ada Moreau", preferred_language=language)
    consent = ConsentRecordFactory(person=person, approved=True)
    staff = UserFactory(first_name="Maya", last_name="Lind")
    invitation = invitations.invitation_create(person=person, consent=consent, created_by=staff)
    for (email_id,) in queued.of(mail_tasks.send_email):
        mail_tasks.send_email.apply(args=[email_id]).get()
        assert OutboundEmail.objects.get(pk=email_id).status == "sent"
    (message,) = mail.outbox
    link = re.search(r"https?://\S+/verify/\S+/", message.body)
    assert link is not None and invitation.display_code in message.body
    return invitation, link.group(0)


def confirm_queued(queued) -> list[str]:
    """Run the confirmations the callback page queued, as the worker would."""
    return [
        verification_tasks.confirm_upstream_session.apply(args=[pk]).get()
        for (pk,) in queued.of(verification_tasks.confirm_upstream_session)
    ]


def complete_on_sandbox_page(phone: Page, identity: str = "grace") -> None:
    """The sandbox's phone page stands in for the provider's; only the tests know its markup."""
    expect(phone.get_by_role("heading", name="Real-person verification (sandbox)")).to_be_visible()
    phone.get_by_label(identity).check()
    phone.get_by_role("button", name="Complete").click()


def test_a_person_verifies_from_the_invitation_email_to_a_stored_group(
    upstream, phone: Page, queued
):
    invitation, link = invite_by_email(queued)
    assert link.startswith(upstream.url)

    phone.goto(link)
    expect(phone.get_by_role("heading", name="Hello Ada")).to_be_visible()
    expect(phone.get_by_text("Maya Lind at The studio invites you")).to_be_visible()
    expect(phone.locator("#in-app-warning")).to_have_count(0)
    expect(phone.locator("#desktop-warning")).to_have_count(0)
    screenshot(phone, "invitation-page")
    phone.get_by_role("button", name="Start verification").click()

    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")
    assert "lng=en" in phone.url
    complete_on_sandbox_page(phone)

    phone.wait_for_url(f"{upstream.url}/verify/callback/**")
    expect(phone.get_by_role("heading", name="Thank you!")).to_be_visible()
    verification = UpstreamSession.objects.get(invitation=invitation)
    assert verification.status == Status.CALLBACK_RECEIVED

    assert confirm_queued(queued) == ["confirmed"]
    expect(phone.locator("#verify-done")).to_be_visible()  # the page asked the status endpoint
    screenshot(phone, "callback-page")

    group = AssetGroup.objects.get(person=invitation.person)
    assert group.upstream_session == UpstreamSession.objects.get(pk=verification.pk)
    invitation.refresh_from_db()
    assert invitation.status == VerificationSession.Status.VERIFIED

    # A reload of the callback page (a replayed callback) changes nothing and says nothing.
    phone.reload()
    expect(phone.get_by_role("heading", name="Thank you", exact=True)).to_be_visible()
    assert len(queued.of(verification_tasks.confirm_upstream_session)) == 1
    # The H5 link worked once: opening it again shows the upstream's own page for that.
    response = phone.goto(verification.h5_link)
    assert response is not None and response.status == 410
    # The invitation link now says the person is verified.
    phone.goto(link)
    expect(phone.get_by_role("heading", name="You are verified")).to_be_visible()


def test_a_failure_on_the_phone_lets_the_person_try_again_and_succeed(
    upstream, phone: Page, queued, settings
):
    invitation, link = invite_by_email(queued, language="zh-Hant")

    phone.goto(link)
    phone.get_by_role("button", name="開始驗證").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")
    assert "lng=zh-Hant" in phone.url
    phone.get_by_role("button", name="失敗").click()

    phone.wait_for_url(f"{upstream.url}/verify/callback/**")
    expect(phone.get_by_role("heading", name="驗證未完成")).to_be_visible()
    assert confirm_queued(queued) == ["callback_received"]  # only the upstream decides
    assert not AssetGroup.objects.exists()

    phone.get_by_role("link", name="重試").click()
    expect(phone.get_by_text("上一次驗證未通過")).to_be_visible()
    screenshot(phone, "invitation-page-zh-hant-after-a-failure")
    phone.get_by_role("button", name="開始驗證").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")
    phone.get_by_label("grace").check()
    phone.get_by_role("button", name="完成").click()
    phone.wait_for_url(f"{upstream.url}/verify/callback/**")

    assert confirm_queued(queued)[-1] == "confirmed"
    assert AssetGroup.objects.filter(person=invitation.person).count() == 1
    first, second = invitation.upstream_sessions.order_by("created_at")
    assert first.status == Status.CALLBACK_RECEIVED and second.status == Status.CONFIRMED


def test_a_person_who_leaves_the_h5_page_starts_a_new_session_without_losing_the_first(
    upstream, phone: Page, queued
):
    invitation, link = invite_by_email(queued)

    phone.goto(link)
    phone.get_by_role("button", name="Start verification").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")
    first_link = phone.url
    phone.go_back()
    expect(phone.get_by_text("If you already finished the check")).to_be_visible()
    phone.get_by_role("button", name="Start verification").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")

    assert phone.url != first_link
    complete_on_sandbox_page(phone)
    phone.wait_for_url(f"{upstream.url}/verify/callback/**")
    assert confirm_queued(queued) == ["confirmed"]
    statuses = list(
        invitation.upstream_sessions.order_by("created_at").values_list("status", flat=True)
    )
    assert statuses == [Status.CREATED, Status.CONFIRMED]


def test_a_person_who_completes_and_closes_the_phone_is_confirmed_by_polling(
    upstream, phone: Page, queued
):
    invitation, link = invite_by_email(queued)
    phone.goto(link)
    phone.get_by_role("button", name="Start verification").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")

    # Complete, but the phone never follows the redirect to the callback page (closed, no
    # signal): the upstream's answer to Complete is fetched, and the redirect dropped.
    def complete_then_close(route):
        answer = route.fetch(max_redirects=0)
        assert answer.status == 302 and "/verify/callback/" in answer.headers["location"]
        route.fulfill(status=200, body="phone closed")

    phone.route(f"{upstream.url}/sandbox/h5/**", complete_then_close)
    phone.get_by_label("grace").check()
    phone.get_by_role("button", name="Complete").click()
    expect(phone.get_by_text("phone closed")).to_be_visible()
    assert queued.of(verification_tasks.confirm_upstream_session) == []

    with time_machine.travel(timezone.now() + datetime.timedelta(seconds=6), tick=True):
        assert verification_tasks.poll_upstream_sessions.apply().get() == 1

    assert AssetGroup.objects.filter(person=invitation.person).exists()


def test_an_abandoned_session_expires_and_the_person_can_start_again(
    upstream, phone: Page, queued, settings
):
    invitation, link = invite_by_email(queued)
    phone.goto(link)
    phone.get_by_role("button", name="Start verification").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")

    with time_machine.travel(
        timezone.now() + datetime.timedelta(seconds=settings.ANYFAST_TOKEN_TTL + 1), tick=True
    ):
        assert verification_tasks.poll_upstream_sessions.apply().get() == 1
        response = phone.reload()  # the H5 link is long dead too
        assert response is not None and response.status == 410
        phone.goto(link)
        expect(phone.get_by_text("Your last attempt was not finished in time")).to_be_visible()
        expect(phone.get_by_role("button", name="Start verification")).to_be_visible()

    assert UpstreamSession.objects.get(invitation=invitation).status == Status.EXPIRED


def test_a_forged_success_callback_shows_no_success_and_stores_nothing(
    upstream, phone: Page, queued
):
    invitation, link = invite_by_email(queued)
    phone.goto(link)
    phone.get_by_role("button", name="Start verification").click()
    phone.wait_for_url(f"{upstream.url}/sandbox/h5/**")
    verification = UpstreamSession.objects.get(invitation=invitation)

    forged = (
        f"{upstream.url}/verify/callback/{verification.public_id}/"
        f"?bytedToken={verification.byted_token}&resultCode=10000&verify_type=real_time"
    )
    phone.goto(forged)
    expect(phone.get_by_role("heading", name="Thank you!")).to_be_visible()

    assert confirm_queued(queued) == ["callback_received"]
    phone.wait_for_timeout(1500)  # the page's status check ran: still pending
    expect(phone.locator("#verify-done")).to_be_hidden()
    assert not AssetGroup.objects.exists()
    invitation.refresh_from_db()
    assert invitation.status == VerificationSession.Status.OPENED


def test_a_person_types_the_short_code_on_a_phone_that_cannot_scan(upstream, phone: Page, queued):
    invitation, _link = invite_by_email(queued)

    phone.goto(f"{upstream.url}/verify/")
    phone.get_by_label("Your code").fill(invitation.display_code.lower())
    screenshot(phone, "code-page")
    phone.get_by_role("button", name="Continue").click()

    expect(phone.get_by_role("button", name="Start verification")).to_be_visible()
