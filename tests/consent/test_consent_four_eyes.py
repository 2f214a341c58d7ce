"""Four eyes (issue 15, ``CONSENT_FOUR_EYES``): whoever submitted a consent record for review
cannot approve or reject it, superusers included; another reviewer decides."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.test import Client

from consent import services
from consent.models import ConsentRecord
from tests.factories import ConsentRecordFactory, UserFactory

pytestmark = pytest.mark.django_db
S = ConsentRecord.Status
CHANGELIST = "/admin/consent/consentrecord/"


def _submitted_by(user) -> ConsentRecord:
    record = ConsentRecordFactory(complete=True)
    return services.consent_submit(record=record, actor=user)


@pytest.mark.parametrize("superuser", [False, True], ids=["reviewer", "superuser"])
def test_the_submitter_can_neither_approve_nor_reject(superuser):
    clerk = UserFactory(username="clerk", superuser=superuser)
    record = _submitted_by(clerk)

    with pytest.raises(services.ConsentFourEyes, match="clerk submitted it for review on"):
        services.consent_approve(record=record, actor=clerk)
    with pytest.raises(services.ConsentFourEyes, match="another reviewer must approve or reject"):
        services.consent_reject(record=record, actor=clerk, reason="Changed my mind.")

    stored = ConsentRecord.objects.get(pk=record.pk)
    assert stored.status == S.PENDING_REVIEW and stored.reviewed_by is None


def test_another_reviewer_approves_what_the_clerk_submitted():
    clerk, legal = UserFactory(username="clerk"), UserFactory(username="legal")
    record = _submitted_by(clerk)

    services.consent_approve(record=record, actor=legal, note="Fine.")

    stored = ConsentRecord.objects.get(pk=record.pk)
    assert (stored.status, stored.submitted_by, stored.reviewed_by) == (S.APPROVED, clerk, legal)


def test_without_four_eyes_the_submitter_may_decide(settings):
    settings.CONSENT_FOUR_EYES = False
    clerk = UserFactory(username="clerk")
    approved, rejected = _submitted_by(clerk), _submitted_by(clerk)

    services.consent_approve(record=approved, actor=clerk)
    services.consent_reject(record=rejected, actor=clerk, reason="Unsigned.")

    assert ConsentRecord.objects.get(pk=approved.pk).status == S.APPROVED
    assert ConsentRecord.objects.get(pk=rejected.pk).status == S.REJECTED


def test_four_eyes_is_on_unless_the_environment_turns_it_off():
    from django.conf import settings

    assert settings.CONSENT_FOUR_EYES is True


# --- The admin --------------------------------------------------------------------------------


def _action(client: Client, action: str, record: ConsentRecord, **data: str):
    return client.post(
        CHANGELIST, {"action": action, "_selected_action": [record.pk], **data}, follow=True
    )


def test_the_record_page_tells_the_submitter_another_reviewer_decides(
    superuser_client: Client, superuser
):
    record = _submitted_by(superuser)

    html = superuser_client.get(f"{CHANGELIST}{record.pk}/change/").content.decode()

    assert "root submitted it for review on" in html
    assert "another reviewer must approve or reject it" in html
    assert 'value="approve_records"' not in html and 'value="reject_records"' not in html


def test_the_approve_and_reject_pages_refuse_the_submitter(superuser_client: Client, superuser):
    record = _submitted_by(superuser)

    for action, data in (("approve_records", {"note": ""}), ("reject_records", {"reason": "No."})):
        page = _action(superuser_client, action, record).content.decode()
        assert "root submitted it for review on" in page
        assert 'name="confirm"' not in page  # nothing to confirm
        confirmed = _action(superuser_client, action, record, confirm="yes", **data)
        assert "another reviewer must approve or reject it" in confirmed.content.decode()
    assert ConsentRecord.objects.get(pk=record.pk).status == S.PENDING_REVIEW


def test_another_reviewer_approves_in_the_admin(client: Client, superuser):
    record = _submitted_by(UserFactory(username="clerk"))
    client.force_login(superuser)

    page = client.get(f"{CHANGELIST}{record.pk}/change/").content.decode()
    assert 'value="approve_records"' in page and "submitted it for review" not in page
    _action(client, "approve_records", record, confirm="yes", note="Fine.")

    assert ConsentRecord.objects.get(pk=record.pk).reviewed_by == superuser


def test_the_demo_is_submitted_by_onboarding_and_decided_by_legal(settings):
    settings.DEBUG = True
    call_command("seed_demo")

    submitted = ConsentRecord.objects.exclude(status=S.DRAFT)
    assert {record.submitted_by.username for record in submitted} == {"onboarding"}
    decided = submitted.exclude(status=S.PENDING_REVIEW)
    assert {record.reviewed_by.username for record in decided} == {"legal"}
    assert {record.revoked_by.username for record in decided.filter(status=S.REVOKED)} == {"legal"}
