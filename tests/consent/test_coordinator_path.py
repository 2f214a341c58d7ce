"""The coordinator's path on the person and consent pages: the one next step for the person's
state, lifecycle actions confirmed with problems and red flags first wherever pressed, and a
revoke confirmation that says what will be withdrawn and that it cannot be undone."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from consent.models import ConsentRecord
from tests.factories import (
    ConsentRecordFactory,
    PersonFactory,
    ReferenceCopyFactory,
    UsableAssetFactory,
    UserFactory,
    VerificationSessionFactory,
)

pytestmark = pytest.mark.django_db
S = ConsentRecord.Status


def _person_page(client: Client, person) -> str:
    return client.get(f"/admin/consent/person/{person.pk}/change/").content.decode()


def _next_step(page: str) -> str:
    found = re.search(r'<li class="next-step">.*?(?:<button type="submit">|<a [^>]*>)(.*?)<', page)
    return found.group(1) if found else ""


def test_a_new_person_is_offered_record_consent_and_no_invitation(superuser_client):
    person = PersonFactory()
    page = _person_page(superuser_client, person)
    assert _next_step(page) == "Record consent"
    assert f'href="/admin/consent/consentrecord/add/?person={person.pk}"' in page
    assert "Invite to verify" not in page and "Upload assets" not in page
    # The link opens the consent form with the person already chosen.
    form = superuser_client.get(f"/admin/consent/consentrecord/add/?person={person.pk}")
    assert form.context["adminform"].form.initial["person"] == str(person.pk)


def test_each_state_offers_its_next_step(superuser_client):
    draft = ConsentRecordFactory(complete=True).person
    assert _next_step(_person_page(superuser_client, draft)) == "Submit consent for review"
    pending = ConsentRecordFactory(complete=True, status=S.PENDING_REVIEW).person
    assert _next_step(_person_page(superuser_client, pending)) == "Review consent"
    approved = ConsentRecordFactory(complete=True, approved=True).person
    assert _next_step(_person_page(superuser_client, approved)) == "Invite to verify"
    invited = VerificationSessionFactory(person=approved)
    page = _person_page(superuser_client, approved)
    assert _next_step(page) == "Invitation QR code" and str(invited.pk) in page
    verified = UsableAssetFactory().group.person
    page = _person_page(superuser_client, verified)
    assert _next_step(page) == "Upload assets" and "Invite to verify" not in page


def test_the_record_pages_submit_button_shows_problems_and_red_flags_before_submitting(
    superuser_client,
):
    record = ConsentRecordFactory(complete=True, expires_on=None)
    page = superuser_client.get(f"/admin/consent/consentrecord/{record.pk}/change/")
    assert 'value="submit_for_review"' in page.content.decode()
    # What that button posts: the action for this one record.
    data = {"action": "submit_for_review", "_selected_action": [record.pk]}
    shown = superuser_client.post("/admin/consent/consentrecord/", data)
    assert shown.status_code == 200
    assert "no end date: the consent is open-ended" in shown.content.decode()
    assert ConsentRecord.objects.get(pk=record.pk).status == S.DRAFT
    incomplete = ConsentRecordFactory(uses=0)
    data = {"action": "submit_for_review", "_selected_action": [incomplete.pk]}
    shown = superuser_client.post("/admin/consent/consentrecord/", data).content.decode()
    assert "Cannot be submitted" in shown and "Submit (" not in shown
    confirmed = superuser_client.post(
        "/admin/consent/consentrecord/", {**data, "_selected_action": [record.pk], "confirm": "yes"}
    )
    assert confirmed.status_code == 302
    assert ConsentRecord.objects.get(pk=record.pk).status == S.PENDING_REVIEW


def test_the_revoke_confirmation_lists_what_is_withdrawn_and_says_it_cannot_be_undone(
    superuser_client,
):
    asset = UsableAssetFactory()
    producer = UserFactory(username="prod", first_name="Pat", last_name="Producer")
    ReferenceCopyFactory(asset=asset, user=producer)
    data = {"action": "revoke_consent", "_selected_action": [asset.consent.pk]}
    page = superuser_client.post("/admin/consent/consentrecord/", data).content.decode()
    assert "cannot be undone" in page
    assert asset.asset_uri in page
    assert f"Deleted ({asset.group.group_id})" in page
    assert "Pat Producer" in page
    assert ConsentRecord.objects.get(pk=asset.consent.pk).status == S.APPROVED


def test_a_drafts_form_has_no_review_fields_and_a_reviewed_one_only_those_written(
    superuser_client,
):
    draft = ConsentRecordFactory(complete=True)
    page = superuser_client.get(f"/admin/consent/consentrecord/{draft.pk}/change/")
    names = [fieldset.name for fieldset in page.context["adminform"]]
    assert "Review" not in names and "Versions" not in names
    approved = ConsentRecordFactory(complete=True, approved=True)
    page = superuser_client.get(f"/admin/consent/consentrecord/{approved.pk}/change/")
    review = next(f for f in page.context["adminform"] if f.name == "Review")
    fields = [field.field["name"] for line in review for field in line]
    assert (
        "reviewed_at" in fields and "revoked_at" not in fields and "revocation_reason" not in fields
    )
    # The uses come right after the terms; the review section after the uses.
    html = page.content.decode()
    assert html.index('id="uses-group"') < html.index(">Review</h2>")
