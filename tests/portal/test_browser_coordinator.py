"""The coordinator's path in a real browser: the person page's one next step in each state, the
People list at 1366 px, and the whole walk timed (add a person, record consent, submit, Legal
approves, invite, the person verifies on the sandbox, upload).

With ``SAVE_SCREENSHOTS=1`` the pages are saved to ``docs/screenshots/``.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, expect

from consent.models import ConsentRecord
from portal.roles import LEGAL, ONBOARDING, roles_apply
from sandbox.samples import make_image
from tests.factories import (
    ConsentRecordFactory,
    PersonFactory,
    UsableAssetFactory,
    UserFactory,
    VerificationSessionFactory,
)
from tests.verification.test_browser_verify import complete_on_sandbox_page, confirm_queued
from tests.verification_helpers import use_sandbox
from verification.models import VerificationSession
from verification.services.invitations import invitation_url

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
SCREENSHOTS = Path(django_settings.BASE_DIR) / "docs" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}
S = ConsentRecord.Status


def screenshot(page: Page, name: str) -> None:
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def _signed_in(
    browser: Browser, base_url: str, username: str, role: str = ""
) -> tuple[BrowserContext, Page]:
    """A laptop-sized browser signed in as ``username``, a member of ``role`` (a superuser
    without one; the demo's names are exempt from the second sign-in step while DEBUG is on)."""
    user = UserFactory(
        username=username, superuser=not role, first_name=username.title(), last_name="Staff"
    )
    if role:
        roles_apply()
        user.groups.add(Group.objects.get(name=role))
    context = browser.new_context(base_url=base_url, viewport=LAPTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_have_text("Talent Consent Portal")
    return context, page


@pytest.fixture
def staff(browser: Browser, live_server) -> Iterator[Page]:
    context, page = _signed_in(browser, live_server.url, "onboarding")
    yield page
    context.close()


def _next_step(page: Page):
    return page.locator(".object-tools li.next-step").locator("a, button")


def _looks_like_an_admin_button(button) -> None:
    """The admin's default button colour, not a browser's grey native button."""
    background = button.evaluate("e => getComputedStyle(e).backgroundColor")
    assert background not in ("rgb(239, 239, 239)", "rgb(240, 240, 240)", "rgba(0, 0, 0, 0)")
    assert button.evaluate("e => getComputedStyle(e).borderRadius") == "15px"


def test_the_person_page_offers_the_next_step_for_each_state(staff: Page):
    people = {
        "new": PersonFactory(legal_name="Nina New"),
        "draft": ConsentRecordFactory(
            complete=True, expires_on=None, person__legal_name="Dora Draft"
        ).person,
        "approved": ConsentRecordFactory(
            complete=True, approved=True, person__legal_name="Abe Approved"
        ).person,
        "verified": UsableAssetFactory(group__person__legal_name="Vera Verified").group.person,
    }
    expected = {
        "new": "Record consent",
        "draft": "Submit consent for review",
        "approved": "Invite to verify",
        "verified": "Upload assets",
    }
    for state, person in people.items():
        staff.goto(f"/admin/consent/person/{person.pk}/change/")
        step = _next_step(staff)
        expect(step).to_have_count(1)
        expect(step).to_have_text(expected[state])
        _looks_like_an_admin_button(step)
        for other in set(expected.values()) - {expected[state]}:
            expect(staff.locator(".object-tools").get_by_text(other, exact=True)).to_have_count(0)
        screenshot(staff, f"coordinator-next-step-{state}")

    # The draft's button shows the record's problems and red flags before anything changes.
    staff.goto(f"/admin/consent/person/{people['draft'].pk}/change/")
    _next_step(staff).click()
    expect(staff.locator("h1")).to_contain_text("Submit for review")
    expect(staff.locator(".lifecycle-record")).to_contain_text("Red flags")
    screenshot(staff, "coordinator-submit-confirmation")
    assert ConsentRecord.objects.get(person=people["draft"]).status == S.DRAFT


def test_the_people_list_fits_a_1366_px_screen(staff: Page):
    for number in range(5):
        VerificationSessionFactory(
            person__legal_name=f"Maximilian Alexander Worthington-Smythe {number}",
            person__display_name=f"Max {number}",
            person__email=f"maximilian.worthington-smythe.{number}@talent-agency.test",
        )
    staff.goto("/admin/consent/person/")
    expect(staff.locator("#result_list")).to_be_visible()
    screenshot(staff, "coordinator-people-list-1366")
    overflow = staff.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    right = staff.evaluate(
        "Math.max(...[...document.querySelectorAll('#result_list th')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert right <= LAPTOP["width"]
    # No scrolling box hides the last columns either.
    hidden = staff.evaluate(
        "(() => { const box = document.querySelector('.results');"
        " return box.scrollWidth - box.clientWidth; })()"
    )
    assert hidden <= 0


def _pdf() -> bytes:
    page = io.BytesIO()
    Image.new("RGB", (595, 842), "white").save(page, "PDF")
    return page.getvalue()


def test_the_coordinators_walk_timed(browser: Browser, live_server, settings, tmp_path, queued):
    """Add person → record consent → submit → (Legal approves) → invite → verified in the
    sandbox → upload; the time is printed (``-s``) for the report."""
    use_sandbox(settings, live_server, tmp_path)
    settings.CONSENT_FOUR_EYES = True
    context, staff = _signed_in(browser, live_server.url, "onboarding", ONBOARDING.name)
    legal_context, legal = _signed_in(browser, live_server.url, "legal", LEGAL.name)
    document = tmp_path / "signed-consent.pdf"
    document.write_bytes(_pdf())
    portrait = tmp_path / "portrait.jpg"
    portrait.write_bytes(make_image(width=1200, height=1600, fmt="JPEG", face="grace", label="x"))
    started = time.monotonic()
    marks: dict[str, float] = {}

    # Onboarding: the person, then the one button of each step.
    staff.goto("/admin/consent/person/add/")
    staff.fill("#id_legal_name", "Grace Okafor")
    staff.fill("#id_display_name", "Grace")
    staff.fill("#id_email", "grace@talent.test")
    staff.click("input[name=_continue]")
    _next_step(staff).click()  # Record consent: the person is already chosen
    staff.fill("#id_consent_text_version", "2026.1")
    staff.select_option("#id_capture_method", "e_signature")
    staff.fill("#id_consent_text_sha256", "ab" * 32)
    staff.fill("#id_intended_uses", "Reference likeness for a promotional video.")
    staff.fill("#id_territory", "United Kingdom")
    staff.fill("#id_starts_on", "2026-01-01")
    staff.fill("#id_expires_on", "2027-06-30")
    staff.fill("#id_prohibited_uses", "Political, adult or endorsement content.")
    staff.select_option("#id_representation", index=1)
    staff.fill("#id_representative_name", "SAG-AFTRA local 1")
    staff.check("#id_biometric_notice_accepted")
    staff.check("#id_retention_policy_accepted")
    staff.set_input_files("#id_signed_document", str(document))
    staff.fill("#id_uses-0-project", "Spring campaign")
    staff.fill("#id_uses-0-medium", "AI-generated video advertisement")
    staff.fill("#id_uses-0-channels", "YouTube, Instagram")
    staff.fill("#id_uses-0-territory", "United Kingdom")
    staff.fill("#id_uses-0-languages", "English")
    staff.fill("#id_uses-0-description", "The person walking through a spring market.")
    screenshot(staff, "coordinator-consent-form")
    staff.click("input[name=_save]")
    expect(staff.locator(".messagelist")).to_contain_text("was added successfully")
    person_id = ConsentRecord.objects.get().person_id
    staff.goto(f"/admin/consent/person/{person_id}/change/")
    expect(_next_step(staff)).to_have_text("Submit consent for review")
    _next_step(staff).click()
    staff.get_by_role("button", name="Submit (1)").or_(
        staff.locator("input[value='Submit (1)']")
    ).click()
    expect(staff.locator(".messagelist")).to_contain_text("1 consent record(s) submitted")
    staff.goto(f"/admin/consent/person/{person_id}/change/")
    expect(staff.locator(".next-step-note")).to_contain_text("waiting for Legal")
    screenshot(staff, "coordinator-waiting-for-legal")
    marks["consent submitted"] = time.monotonic() - started

    # Legal (someone else: four eyes) approves.
    record = ConsentRecord.objects.get()
    legal.goto(f"/admin/consent/consentrecord/{record.pk}/change/")
    legal.locator(".object-tools").get_by_role("button", name="Approve").click()
    legal.fill("#id_note", "Checked the signed form.")
    legal.locator("input[value='Approve (1)']").click()
    expect(legal.locator(".messagelist")).to_contain_text("approved")
    marks["approved by legal"] = time.monotonic() - started

    # Onboarding invites; the person verifies on their phone (the sandbox's page).
    staff.goto(f"/admin/consent/person/{person_id}/change/")
    expect(_next_step(staff)).to_have_text("Invite to verify")
    _next_step(staff).click()
    expect(staff.locator(".messagelist")).to_contain_text("Invited Grace")
    invitation = VerificationSession.objects.get(person_id=person_id)
    phone = context.new_page()
    phone.goto(invitation_url(invitation))
    phone.get_by_role("button", name="Start verification").click()
    complete_on_sandbox_page(phone)
    phone.wait_for_url("**/verify/callback/**")
    assert confirm_queued(queued) == ["confirmed"]
    phone.close()
    marks["verified"] = time.monotonic() - started

    staff.goto(f"/admin/consent/person/{person_id}/change/")
    expect(_next_step(staff)).to_have_text("Upload assets")
    _next_step(staff).click()
    staff.set_input_files("input[type=file]", str(portrait))
    staff.locator("input[value=Upload]").click()
    expect(staff.locator("#upload-results")).to_contain_text("queued")
    marks["upload queued"] = elapsed = time.monotonic() - started
    screenshot(staff, "coordinator-uploaded")
    print(
        f"\nCoordinator's walk: {elapsed:.1f} s in all; "
        + ", ".join(f"{name} at {at:.1f} s" for name, at in marks.items())
    )
    legal_context.close()
    context.close()
    assert elapsed < 120
