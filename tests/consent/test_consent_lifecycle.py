"""The consent lifecycle: each transition and refusal, immutability, versions, expiry."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from consent import services
from consent.models import ConsentRecord, ConsentRecordLocked
from tests.factories import ConsentRecordFactory, ConsentUseFactory, UserFactory

pytestmark = pytest.mark.django_db
S = ConsentRecord.Status


@pytest.fixture
def legal():
    return UserFactory(username="legal")


def _pending(**kwargs) -> ConsentRecord:
    return ConsentRecordFactory(complete=True, status=S.PENDING_REVIEW, **kwargs)


def _approved(**kwargs) -> ConsentRecord:
    return ConsentRecordFactory(
        complete=True, status=S.APPROVED, reviewed_at=timezone.now(), **kwargs
    )


def test_submitting_an_incomplete_draft_is_refused_with_every_reason(legal):
    record = ConsentRecordFactory()  # no document, no text hash, no notice, no use
    with pytest.raises(services.ConsentIncomplete) as refused:
        services.consent_submit(record=record, actor=legal)
    assert refused.value.problems == [
        "the signed consent document is missing",
        "the SHA-256 of the consent text shown is missing",
        "the biometric data notice was not acknowledged (BIPA, GDPR Art. 9)",
        "no intended use is described",
    ]
    record.refresh_from_db()
    assert record.status == S.DRAFT


def test_a_vague_or_incomplete_use_is_named_precisely(legal):
    record = ConsentRecordFactory(complete=True, uses=0)
    ConsentUseFactory(consent=record, description="Anything at all, forever", channels="")
    problems = services.consent_problems(record)
    assert problems == [
        "use 1: the channels is missing",
        "use 1: the description is not specific (“Anything”)",
    ]


def test_a_minor_needs_a_guardian():
    record = ConsentRecordFactory(complete=True, is_minor=True)
    assert services.consent_problems(record) == [
        "the person is a minor: the guardian's name and relationship are needed"
    ]


def test_submitting_a_complete_draft_queues_it_for_review_and_writes_an_event(legal):
    record = ConsentRecordFactory(complete=True)
    services.consent_submit(record=record, actor=legal)
    record.refresh_from_db()
    assert record.status == S.PENDING_REVIEW
    assert record.submitted_by == legal and record.submitted_at is not None
    event = AuditEvent.objects.get(action="consent.submit")
    assert event.before["status"] == "draft" and event.after["status"] == "pending_review"
    assert event.actor_label == "legal" and event.person_id == record.person_id


def test_approval_records_the_reviewer_and_the_red_flags_it_saw(legal):
    record = _pending(expires_on=None, allows_model_training=True)
    services.consent_approve(record=record, actor=legal, note="Checked against the contract.")
    record.refresh_from_db()
    assert record.status == S.APPROVED
    assert record.reviewed_by == legal and record.review_note == "Checked against the contract."
    flags = AuditEvent.objects.get(action="consent.approve").detail["red_flags"]
    assert "no end date: the consent is open-ended" in flags
    assert "it allows the likeness to be used to train models" in flags


@pytest.mark.parametrize("status", [S.DRAFT, S.APPROVED, S.REJECTED, S.REVOKED])
def test_only_a_record_under_review_can_be_approved(legal, status):
    record = ConsentRecordFactory(
        complete=True, status=status, reviewed_at=timezone.now(), revoked_at=timezone.now()
    )
    with pytest.raises(services.ConsentTransitionError, match="cannot be approved"):
        services.consent_approve(record=record, actor=legal)
    assert ConsentRecord.objects.get(pk=record.pk).status == status


def test_two_reviewers_racing_cannot_both_win(legal):
    record = _pending()
    stale_copy = ConsentRecord.objects.get(pk=record.pk)
    services.consent_reject(record=record, actor=legal, reason="Wrong person's signature.")
    with pytest.raises(services.ConsentTransitionError, match="it is rejected"):
        services.consent_approve(record=stale_copy, actor=legal)
    assert ConsentRecord.objects.get(pk=record.pk).status == S.REJECTED
    assert not AuditEvent.objects.filter(action="consent.approve").exists()


def test_rejection_needs_a_reason(legal):
    record = _pending()
    with pytest.raises(services.ConsentTransitionError, match="Say why"):
        services.consent_reject(record=record, actor=legal, reason="  ")
    services.consent_reject(record=record, actor=legal, reason="Document unsigned.")
    record.refresh_from_db()
    assert record.status == S.REJECTED and record.review_note == "Document unsigned."


def test_revocation_records_who_when_how_and_why(legal):
    record = _approved()
    asked = timezone.now() - datetime.timedelta(days=1)
    services.consent_revoke(
        record=record, actor=legal, channel="email", reason="Changed my mind.", requested_at=asked
    )
    record.refresh_from_db()
    assert record.status == S.REVOKED
    assert record.revoked_by == legal and record.revocation_channel == "email"
    assert (
        record.revocation_requested_at == asked and record.revocation_reason == "Changed my mind."
    )
    assert record.ended_at is not None
    assert not ConsentRecord.objects.in_force().filter(pk=record.pk).exists()


@pytest.mark.parametrize(
    ("channel", "reason", "requested_at", "message"),
    [
        ("", "Changed my mind.", None, "how the person revoked"),
        ("email", "", None, "reason"),
        ("email", "x", timezone.now() + datetime.timedelta(days=1), "future"),
    ],
)
def test_revocation_is_refused_without_channel_reason_or_with_a_future_date(
    legal, channel, reason, requested_at, message
):
    record = _approved()
    with pytest.raises(services.ConsentTransitionError, match=message):
        services.consent_revoke(
            record=record, actor=legal, channel=channel, reason=reason, requested_at=requested_at
        )
    assert ConsentRecord.objects.get(pk=record.pk).status == S.APPROVED


def test_an_approved_record_refuses_every_change_through_the_orm():
    record = _approved()
    record.intended_uses = "Anything at all, forever"
    record.expires_on = None
    with pytest.raises(ConsentRecordLocked, match="never changes"):
        record.save()
    with pytest.raises(ConsentRecordLocked):
        ConsentUseFactory(consent=record)
    use = record.uses.get()
    use.description = "Anything at all"
    with pytest.raises(ConsentRecordLocked):
        use.save()
    with pytest.raises(ConsentRecordLocked):
        use.delete()
    stored = ConsentRecord.objects.get(pk=record.pk)
    assert stored.expires_on is not None and stored.intended_uses != "Anything at all, forever"


def test_the_database_refuses_sql_that_rewrites_an_approved_record():
    record = _approved()
    other = ConsentRecordFactory().person
    for statement, params in [
        ("UPDATE consent_consentrecord SET person_id = %s WHERE id = %s", [other.pk, record.pk]),
        ("UPDATE consent_consentrecord SET expires_on = NULL WHERE id = %s", [record.pk]),
        ("DELETE FROM consent_consentuse WHERE consent_id = %s", [record.pk]),
    ]:
        with (
            pytest.raises(DatabaseError, match="never change"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement, params)
    # Nor its review: written once, by the approval.
    with (
        pytest.raises(DatabaseError, match="written once"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "UPDATE consent_consentrecord SET review_note = 'ok' WHERE id = %s", [record.pk]
        )
    assert ConsentRecord.objects.get(pk=record.pk).person != other


def test_a_new_version_copies_the_terms_and_replaces_the_old_once_approved(legal):
    original = _approved()
    version = services.consent_new_version(record=original, actor=legal)
    assert version.status == S.DRAFT and version.supersedes == original
    assert version.intended_uses == original.intended_uses and not version.signed_document
    assert [str(use) for use in version.uses.all()] == [str(use) for use in original.uses.all()]
    with pytest.raises(services.ConsentTransitionError, match="already the next version"):
        services.consent_new_version(record=original, actor=legal)

    version.expires_on = original.expires_on + datetime.timedelta(days=30)
    version.signed_document = ConsentRecordFactory.build(with_document=True).signed_document
    version.save()
    services.consent_submit(record=version, actor=UserFactory(username="onboarding"))
    services.consent_approve(record=version, actor=legal)
    original.refresh_from_db()
    assert original.status == S.SUPERSEDED and original.ended_at is not None
    assert list(ConsentRecord.objects.in_force().filter(person=original.person)) == [version]

    rows = services.consent_version_differences(earlier=original, current=version)
    changed = {row["label"] for row in rows if row["changed"]}
    assert changed == {"expires on"}


def test_records_past_their_end_date_expire_and_others_stay(legal):
    ends_today = _approved(expires_on=timezone.localdate())
    ended = _approved(
        starts_on=timezone.localdate() - datetime.timedelta(days=30),
        expires_on=timezone.localdate() - datetime.timedelta(days=1),
    )
    open_ended = _approved(expires_on=None)
    assert services.consent_expire_due() == [ended.pk]
    with time_machine.travel(timezone.now() + datetime.timedelta(days=1)):
        assert services.consent_expire_due() == [ends_today.pk]
    statuses = dict(ConsentRecord.objects.values_list("pk", "status"))
    assert statuses == {ends_today.pk: S.EXPIRED, ended.pk: S.EXPIRED, open_ended.pk: S.APPROVED}
    assert AuditEvent.objects.filter(action="consent.expire", actor_label="scheduler").count() == 2


def test_in_force_means_approved_and_within_its_dates():
    today = timezone.localdate()
    in_force = _approved(starts_on=today - datetime.timedelta(days=3))
    _approved(starts_on=today + datetime.timedelta(days=1))  # not yet
    _pending()
    assert list(ConsentRecord.objects.in_force()) == [in_force]


# --- Admin -----------------------------------------------------------------------------------


def _changelist_action(client: Client, action: str, records, **data):
    return client.post(
        "/admin/consent/consentrecord/",
        {"action": action, "_selected_action": [r.pk for r in records], **data},
    )


def test_the_approve_action_shows_problems_and_red_flags_before_confirming(superuser_client):
    ready = _pending(expires_on=None)
    incomplete = ConsentRecordFactory(status=S.PENDING_REVIEW)
    page = _changelist_action(superuser_client, "approve_records", [ready, incomplete])
    assert page.status_code == 200
    html = page.content.decode()
    assert "no end date: the consent is open-ended" in html
    assert "the signed consent document is missing" in html
    assert "Approve (1)" in html
    response = _changelist_action(
        superuser_client, "approve_records", [ready], confirm="yes", note="Fine."
    )
    assert response.status_code == 302
    assert ConsentRecord.objects.get(pk=ready.pk).status == S.APPROVED
    assert ConsentRecord.objects.get(pk=incomplete.pk).status == S.PENDING_REVIEW


def test_the_reject_action_insists_on_a_reason(superuser_client):
    record = _pending()
    page = _changelist_action(superuser_client, "reject_records", [record], confirm="yes")
    assert "This field is required" in page.content.decode()
    assert ConsentRecord.objects.get(pk=record.pk).status == S.PENDING_REVIEW
    _changelist_action(
        superuser_client, "reject_records", [record], confirm="yes", reason="Unsigned."
    )
    assert ConsentRecord.objects.get(pk=record.pk).status == S.REJECTED


def test_the_revoke_action_records_the_channel_and_reason(superuser_client, superuser):
    record = _approved()
    _changelist_action(
        superuser_client,
        "revoke_consent",
        [record],
        confirm="yes",
        channel="in_writing",
        reason="Letter of 2026-11-20.",
    )
    record.refresh_from_db()
    assert record.status == S.REVOKED and record.revoked_by == superuser
    assert record.revocation_channel == "in_writing"


def test_submit_for_review_from_the_changelist_is_confirmed_first(superuser_client):
    record = ConsentRecordFactory(complete=True)
    page = _changelist_action(superuser_client, "submit_for_review", [record])
    assert page.status_code == 200 and "Submit (1)" in page.content.decode()
    assert ConsentRecord.objects.get(pk=record.pk).status == S.DRAFT
    response = _changelist_action(superuser_client, "submit_for_review", [record], confirm="yes")
    assert response.status_code == 302
    assert ConsentRecord.objects.get(pk=record.pk).status == S.PENDING_REVIEW


def test_an_approved_record_cannot_be_edited_or_moved_in_the_admin(superuser_client):
    record = _approved()
    other = ConsentRecordFactory().person
    url = f"/admin/consent/consentrecord/{record.pk}/change/"
    page = superuser_client.get(url)
    assert page.status_code == 200
    assert 'name="intended_uses"' not in page.content.decode()
    superuser_client.post(
        url,
        {
            "person": other.pk,
            "intended_uses": "Anything at all, forever",
            "expires_on": "",
            "uses-TOTAL_FORMS": "0",
            "uses-INITIAL_FORMS": "0",
        },
    )
    stored = ConsentRecord.objects.get(pk=record.pk)
    assert stored.person_id == record.person_id and stored.expires_on == record.expires_on
    assert stored.status == S.APPROVED


def test_the_record_page_offers_the_actions_its_status_allows(superuser_client):
    page = superuser_client.get(f"/admin/consent/consentrecord/{_pending().pk}/change/")
    html = page.content.decode()
    assert 'value="approve_records"' in html and 'value="reject_records"' in html
    assert 'value="revoke_consent"' not in html


def test_staff_without_the_review_permission_cannot_approve(client: Client):
    from django.contrib.auth.models import Permission

    clerk = UserFactory(username="onboarding")
    clerk.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_consentrecord", "change_consentrecord", "view_person"]
        )
    )
    client.force_login(clerk)
    record = _pending()
    listing = client.get("/admin/consent/consentrecord/")
    assert "approve_records" not in listing.content.decode()
    assert "submit_for_review" in listing.content.decode()
    _changelist_action(client, "approve_records", [record], confirm="yes")
    assert ConsentRecord.objects.get(pk=record.pk).status == S.PENDING_REVIEW


def test_the_compare_page_shows_both_versions_and_highlights_changes(superuser_client, legal):
    original = _approved(territory="Worldwide")
    version = services.consent_new_version(record=original, actor=legal)
    ConsentRecord.objects.filter(pk=version.pk).update(territory="Europe")
    page = superuser_client.get(f"/admin/consent/consentrecord/{version.pk}/compare/")
    html = page.content.decode()
    assert page.status_code == 200
    assert '<tr class="changed"><th>territory</th><td>Worldwide</td><td>Europe</td></tr>' in html


def test_the_person_page_shows_the_consent_in_force_not_the_latest(superuser_client):
    in_force = _approved()
    ConsentRecordFactory(person=in_force.person)  # a newer draft
    page = superuser_client.get(f"/admin/consent/person/{in_force.person.pk}/change/")
    html = page.content.decode()
    assert f"/admin/consent/consentrecord/{in_force.pk}/change/" in html
    assert "until" in html


def test_the_reject_page_shows_the_red_flags_and_the_revoke_page_claims_nothing(
    superuser_client,
):
    pending = _pending(expires_on=None)
    approved = _approved()

    reject = _changelist_action(superuser_client, "reject_records", [pending]).content.decode()
    revoke = _changelist_action(superuser_client, "revoke_consent", [approved]).content.decode()

    assert "no end date: the consent is open-ended" in reject
    assert "Complete, no red flags" not in reject
    assert "Complete, no red flags" not in revoke


def test_a_new_version_starts_its_own_review_and_expiry_warning(legal):
    original = _approved(expiry_warning_sent_at=timezone.now(), review_note="Checked.")

    version = services.consent_new_version(record=original, actor=legal)

    for field in ConsentRecord.LIFECYCLE_FIELDS:
        assert getattr(version, field) in (None, ""), field
