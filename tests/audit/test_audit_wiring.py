"""Every kind of change writes its audit event: invitations, upstream sessions, emails, assets,
file downloads, and what staff save in the admin; and events never carry a secret.

Upstream flows run against the sandbox over real HTTP (``test_verification_upstream`` and
``test_asset_pipeline`` test the flows themselves; here only their events are checked).
"""

from __future__ import annotations

import datetime
import io
import json
from typing import Any

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models.fields.files import FieldFile
from django.test import Client
from django.utils import timezone
from PIL import Image

from assets import tasks
from assets.models import Asset
from assets.services import pipeline as asset_pipeline
from assets.services import withdrawals
from assets.signing import signed_file_url
from audit.models import AuditEvent
from audit.services import audit_record
from audit.verification import verify_chain
from consent.models import ConsentRecord, Person
from mail import services as mail_services
from mail.models import EmailStatus
from sandbox.samples import make_image
from sandbox.testing import complete_session, fail_session
from tests.assets.test_asset_pipeline import quick_client, submit, upload, verified_group
from tests.factories import (
    AssetFactory,
    AssetGroupFactory,
    ConsentRecordFactory,
    OutboundEmailFactory,
    UserFactory,
    VerificationSessionFactory,
)
from tests.upstream_helpers import SANDBOX_KEY
from tests.verification_helpers import AIGC_KEY, KEY, use_sandbox
from verification.models import UpstreamSession
from verification.services import invitations, sessions

Phone = UpstreamSession.Purpose.PHONE


def _events(person_id: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(person_id=person_id).order_by("pk"))


def _actions(person_id: int) -> list[str]:
    return [event.action for event in _events(person_id)]


def _all_events_text() -> str:
    """Every stored event as JSON text, to look for what must never be in one."""
    return json.dumps([event.content() for event in AuditEvent.objects.all()])


def _later(seconds: float) -> time_machine.travel:
    return time_machine.travel(timezone.now() + datetime.timedelta(seconds=seconds), tick=True)


# --- Invitations ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_invitation_changes_are_audited_with_who_did_them_and_the_status_before_and_after(
    queued,
):
    staff = UserFactory(username="onboarding-1")
    consent = ConsentRecordFactory(approved=True)
    person = consent.person

    invitation = invitations.invitation_create(person=person, consent=consent, created_by=staff)
    invitations.invitation_resend(invitation=invitation, by=staff)
    invitations.invitation_open(token=invitation.invitation_token)
    invitations.invitation_open(token=invitation.invitation_token)  # opened once only
    new = invitations.invitation_reissue(invitation=invitation, by=staff)
    invitations.invitation_cancel(invitation=new, by=staff)

    assert _actions(person.pk) == [
        "invitation.created",
        "invitation.resent",
        "invitation.opened",
        "invitation.cancelled",  # the reissue ends the old one,
        "invitation.created",  # makes the new one,
        "invitation.reissued",  # and links them
        "invitation.cancelled",
    ]
    created, resent, opened, _, _, reissued, cancelled = _events(person.pk)
    assert created.actor_label == "onboarding-1" and created.actor_id == staff.pk
    assert created.after["status"] == "invited" and created.detail == {"email_to": person.email}
    assert resent.detail == {"email_to": person.email}
    assert opened.actor_id is None and opened.actor_label == invitations.PERSON
    assert (opened.before, opened.after) == ({"status": "invited"}, {"status": "opened"})
    assert reissued.object_id == str(invitation.pk) and reissued.detail == {"replaced_by": new.pk}
    assert (cancelled.object_id, cancelled.before, cancelled.after) == (
        str(new.pk),
        {"status": "invited"},
        {"status": "cancelled"},
    )
    text = _all_events_text()
    for secret in (invitation.invitation_token, new.invitation_token, invitation.code, new.code):
        assert secret not in text


@pytest.mark.django_db
def test_invitations_that_run_out_of_time_are_audited_as_the_schedulers_doing(queued):
    consent = ConsentRecordFactory(approved=True, person__email="")
    invitation = invitations.invitation_create(
        person=consent.person, consent=consent, created_by=None
    )

    with time_machine.travel(invitation.expires_at + datetime.timedelta(seconds=1)):
        assert invitations.invitation_expire_overdue() == 1

    event = AuditEvent.objects.get(action="invitation.expired")
    assert event.actor_label == invitations.SCHEDULER and event.object_id == str(invitation.pk)
    assert (event.before, event.after) == ({"status": "invited"}, {"status": "expired"})


@pytest.mark.django_db
def test_a_change_rolled_back_leaves_no_event(queued):
    consent = ConsentRecordFactory(approved=True, person__email="")
    invitation = invitations.invitation_create(
        person=consent.person, consent=consent, created_by=None
    )

    with pytest.raises(RuntimeError), transaction.atomic():
        invitations.invitation_cancel(invitation=invitation, by=None)
        raise RuntimeError("something later in the same transaction failed")

    assert not AuditEvent.objects.filter(action="invitation.cancelled").exists()
    invitation.refresh_from_db()
    assert invitation.is_open


# --- Emails -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_emails_sent_and_failed_are_audited_attempt_by_attempt(settings):
    sent = OutboundEmailFactory()
    mail_services.email_send(email_id=sent.pk)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    failing = OutboundEmailFactory()
    for _ in range(mail_services.MAX_ATTEMPTS):
        with time_machine.travel(failing.next_attempt_at, tick=False):
            failing = mail_services.email_send(email_id=failing.pk)

    (sent_event,) = _events(sent.person_id)
    assert sent_event.action == "email.sent" and sent_event.actor_label == mail_services.WORKER
    assert sent_event.detail["to"] == sent.to and sent_event.after["status"] == EmailStatus.SENT
    events = _events(failing.person_id)
    assert [event.action for event in events] == [
        *["email.attempt_failed"] * (mail_services.MAX_ATTEMPTS - 1),
        "email.failed",
    ]
    assert events[-1].after == {"status": "failed", "attempts": mail_services.MAX_ATTEMPTS}
    assert "ConnectionRefusedError" in events[-1].detail["error"]


# --- Upstream verification sessions -----------------------------------------------------------


@pytest.fixture
def verify_upstream(settings, live_server, tmp_path):
    use_sandbox(settings, live_server, tmp_path)
    return live_server


def _callback(verification: UpstreamSession, result_code: str) -> None:
    sessions.upstream_session_record_callback(
        public_id=verification.public_id,
        params={"bytedToken": verification.byted_token, "resultCode": result_code},
    )


def _confirm(verification: UpstreamSession) -> UpstreamSession:
    return sessions.upstream_session_confirm(upstream_session_id=verification.pk, force=True)


@pytest.mark.django_db(transaction=True)
def test_a_verification_is_audited_from_its_start_to_the_group_without_its_token(
    verify_upstream, queued
):
    invitation = VerificationSessionFactory()
    verification = sessions.upstream_session_start(invitation=invitation, purpose=Phone)
    group_id = complete_session(verification.byted_token)
    _callback(verification, "10000")
    with _later(2):
        _confirm(verification)

    assert _actions(invitation.person_id) == [
        "verification.started",
        "invitation.opened",
        "verification.callback",
        "verification.confirmed",
        "group.created",
        "invitation.verified",
    ]
    started, _, callback, confirmed, group, verified = _events(invitation.person_id)
    assert started.actor_label == invitations.PERSON
    assert started.detail["upstream"] == "CreateVisualValidateSession ok"
    assert started.detail["byted_token"] == f"…{verification.byted_token[-6:]}"
    assert callback.detail == {"resultCode": "10000"}  # the token stays out
    assert (callback.before, callback.after) == (
        {"status": "created"},
        {"status": "callback_received"},
    )
    assert confirmed.detail == {"upstream": "GetVisualValidateResult ok"}
    assert confirmed.after == {"status": "confirmed", "group_id": group_id}
    assert group.object_repr == group_id
    assert verified.after == {"status": "verified"}
    text = _all_events_text()
    assert verification.byted_token not in text and SANDBOX_KEY not in text
    assert verification.h5_link not in text and KEY not in text


@pytest.mark.django_db(transaction=True)
def test_refused_failed_and_expired_sessions_are_audited_with_the_upstreams_words(
    verify_upstream, settings, queued
):
    settings.VERIFICATION_MAX_ATTEMPTS = 2
    invitation = VerificationSessionFactory()
    settings.ANYFAST_API_KEY = AIGC_KEY
    with pytest.raises(invitations.UpstreamStartFailed):
        sessions.upstream_session_start(invitation=invitation, purpose=Phone)
    settings.ANYFAST_API_KEY = KEY
    failing = sessions.upstream_session_start(invitation=invitation, purpose=Phone)
    fail_session(failing.byted_token)
    _callback(failing, "10001")
    abandoned = sessions.upstream_session_start(invitation=invitation, purpose=Phone)
    with _later(settings.ANYFAST_TOKEN_TTL + 1):
        _confirm(failing)
        _confirm(abandoned)

    events = {event.action: event for event in _events(invitation.person_id)}
    refused = events["verification.start_failed"]
    assert refused.detail["upstream"].startswith("CreateVisualValidateSession failed ")
    assert "GroupType must be one of [AIGC]" in refused.detail["message"]
    failed = events["verification.failed"]
    assert failed.object_id == str(failing.pk)
    assert failed.after == {"status": "failed", "last_error_code": "resultCode=10001"}
    expired = events["verification.expired"]
    assert expired.object_id == str(abandoned.pk)
    assert expired.detail["upstream"] == (
        "GetVisualValidateResult failed InvalidParameter.BytedToken"
    )
    # Both attempts used: the invitation fails, and says so.
    assert events["invitation.failed"].after == {"status": "failed"}
    assert failing.byted_token not in _all_events_text()


# --- Assets -----------------------------------------------------------------------------------


@pytest.fixture
def pipeline(upstream, settings, monkeypatch):
    """The sandbox upstream, processing at once; upload tasks are not sent anywhere (the
    services run here, as a worker runs them)."""
    settings.SANDBOX_PROCESSING_SECONDS = 0
    settings.ASSET_POLL_FIRST_SECONDS = 0
    monkeypatch.setattr(tasks.submit_asset, "apply_async", lambda *args, **kwargs: None)
    return upstream


@pytest.mark.django_db(transaction=True)
def test_an_asset_is_audited_through_its_upstream_life(pipeline):
    staff = UserFactory(username="onboarding-2")
    group = verified_group()
    asset = upload(group)
    submit(asset)
    asset_pipeline.assets_poll()
    asset.refresh_from_db()
    asset_pipeline.asset_refresh(asset=asset, client=quick_client(), actor=staff)
    asset.refresh_from_db()
    withdrawals.asset_withdraw(asset=asset, client=quick_client(), actor=staff)

    assert _actions(group.person_id) == [
        "asset.created",
        "asset.submitted",
        "file.downloaded",  # the upstream fetching the signed link, during CreateAsset
        "asset.accepted",
        "asset.active",
        "asset.refreshed",
        "asset.withdrawn",
    ]
    created, submitted, downloaded, accepted, active, refreshed, withdrawn = _events(
        group.person_id
    )
    assert created.after["sha256"] == asset.sha256 and created.after["status"] == "queued"
    assert submitted.detail == {"attempt": 1} and submitted.actor_label == "worker"
    assert downloaded.actor_label == "signed link (anonymous)" and downloaded.actor_id is None
    assert downloaded.object_id == str(asset.pk)
    assert downloaded.detail["file"] == asset.upstream_file.name
    assert accepted.detail == {"upstream": "CreateAsset ok"}
    assert accepted.before == {"status": "uploading", "upstream_id": None, "error_code": ""}
    assert accepted.after == {"status": "processing", "upstream_id": asset.upstream_id,
                              "error_code": ""}  # fmt: skip
    assert active.detail["upstream_status"] == "Active"
    assert refreshed.actor_id == staff.pk and refreshed.after["status"] == "active"
    assert withdrawn.actor_id == staff.pk
    assert withdrawn.detail == {
        "upstream_id": asset.upstream_id,
        "upstream": "DeleteAsset ok",
        "outcome": "deleted",
        "proven_by": "delete_answer",
    }
    assert withdrawn.after == {"status": "withdrawn"}
    assert "/files/" not in _all_events_text().replace("/files/***", "")
    assert verify_chain().intact  # the live server's events joined the same chain


@pytest.mark.django_db(transaction=True)
def test_failed_requeued_and_retried_assets_are_audited_with_the_upstreams_answer(
    pipeline, settings
):
    staff = UserFactory(username="onboarding-3")
    grace = make_image(width=400, height=600, fmt="PNG", face="grace")
    asset = upload(verified_group("ada"), grace)
    submit(asset)
    asset_pipeline.assets_poll()
    asset.refresh_from_db()
    asset_pipeline.asset_retry(asset=asset, client=quick_client(), actor=staff)
    settings.SANDBOX_FAULT_RATE_502 = 1.0
    submit(asset)

    events = _events(asset.group.person_id)
    failed = next(event for event in events if event.action == "asset.failed")
    assert failed.after == {"status": "failed", "error_code": "FaceMismatch"}
    assert (
        failed.detail["upstream_status"] == "Failed" and "FaceMismatch" in failed.detail["message"]
    )
    retried = next(event for event in events if event.action == "asset.retried")
    assert retried.actor_label == "onboarding-3"
    assert (retried.before["status"], retried.after["status"]) == ("failed", "queued")
    # The failed copy held its Name: deleted first, proven by the upstream's answer.
    assert retried.detail == {
        "upstream": "DeleteAsset ok",
        "outcome": "deleted",
        "proven_by": "delete_answer",
    }
    requeued = events[-1]
    assert requeued.action == "asset.requeued"
    assert requeued.detail["upstream"].startswith("CreateAsset failed ")
    assert requeued.after["status"] == "queued" and requeued.detail["retry_in_seconds"] > 0


@pytest.mark.django_db
def test_an_asset_refused_by_the_consent_gate_at_the_last_moment_is_audited_as_failed():
    asset = AssetFactory(
        group=AssetGroupFactory(verified=True), consent=None, next_attempt_at=timezone.now()
    )

    asset_pipeline.asset_submit(asset_id=asset.pk)

    failed = AuditEvent.objects.get(action="asset.failed")
    assert failed.after == {"status": "failed", "error_code": "NotAuthorised"}
    assert failed.detail["refusals"]


# --- File downloads ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_downloads_of_private_files_are_audited(superuser_client: Client, superuser):
    record = ConsentRecordFactory(complete=True)
    asset = AssetFactory()

    assert (
        superuser_client.get(f"/admin/consent/consentrecord/{record.pk}/file/").status_code == 200
    )
    assert superuser_client.get(f"/admin/assets/asset/{asset.pk}/file/").status_code == 200

    document, portrait = AuditEvent.objects.filter(action="file.downloaded").order_by("pk")
    assert (document.actor_id, document.person_id) == (superuser.pk, record.person_id)
    assert document.object_type == "consent.consentrecord"
    assert document.detail == {
        "via": "admin",
        "field": "signed_document",
        "file": record.signed_document.name,
    }
    assert (portrait.object_id, portrait.person_id) == (str(asset.pk), asset.group.person_id)


@pytest.mark.django_db
def test_signed_link_downloads_are_audited_as_anonymous_and_without_the_token(
    client: Client, settings
):
    settings.PORTAL_PUBLIC_URL = "http://testserver"
    record = ConsentRecordFactory(complete=True)
    url = signed_file_url(record.signed_document, expires_in=60)

    assert client.get(url.removeprefix("http://testserver")).status_code == 200

    event = AuditEvent.objects.get(action="file.downloaded")
    assert event.actor_id is None and event.actor_label == "signed link (anonymous)"
    assert (event.object_id, event.person_id) == (str(record.pk), record.person_id)
    assert event.detail == {
        "via": "signed link",
        "file": record.signed_document.name,
        "method": "GET",
    }
    token = url.split("/files/")[1].split("/")[0]
    assert token not in _all_events_text()


@pytest.mark.django_db
def test_a_signed_link_quoted_in_an_event_is_masked():
    asset = AssetFactory()
    link = signed_file_url(asset.file, expires_in=60)
    token = link.split("/files/")[1].split("/")[0]

    audit_record(action="asset.failed", obj=asset, detail={"message": f"could not download {link}"})

    assert token not in _all_events_text() and "/files/***/" in _all_events_text()


# --- What staff save in the admin -------------------------------------------------------------


def _form_data(page: Any) -> dict[str, Any]:
    """What the admin change form on ``page`` would post as it is: its fields and inlines."""
    data: dict[str, Any] = {}

    def add(form: Any) -> None:
        for name in form.fields:
            value = form[name].value()
            if value is None or value is False or isinstance(value, FieldFile):
                continue  # what a browser leaves out: empty, unchecked, no file chosen
            data[form.add_prefix(name)] = "on" if value is True else value

    add(page.context["adminform"].form)
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        for key, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{key}"] = value
        for form in formset.forms:
            add(form)
    return data


@pytest.mark.django_db
def test_people_added_and_changed_in_the_admin_are_audited_field_by_field(
    superuser_client: Client,
):
    superuser_client.post(
        "/admin/consent/person/add/",
        {"legal_name": "Ada Lovelace", "preferred_language": "en", "email": "ada@example.com"},
    )
    person = Person.objects.get(legal_name="Ada Lovelace")
    url = f"/admin/consent/person/{person.pk}/change/"
    unchanged = _form_data(superuser_client.get(url))
    superuser_client.post(url, unchanged)  # nothing changed: nothing to record
    superuser_client.post(url, {**unchanged, "email": "ada@lovelace.example", "phone": "+44 1"})

    created, changed = _events(person.pk)
    assert created.action == "person.created" and created.actor_label == "root"
    assert created.before is None
    assert created.after["legal_name"] == "Ada Lovelace"
    assert created.after["email"] == "ada@example.com"
    assert changed.action == "person.changed"
    assert changed.before == {"email": "ada@example.com", "phone": ""}
    assert changed.after == {"email": "ada@lovelace.example", "phone": "+44 1"}


@pytest.mark.django_db
def test_draft_consent_edits_in_the_admin_are_audited_with_their_uses(superuser_client: Client):
    record = ConsentRecordFactory(complete=True, uses=1)
    url = f"/admin/consent/consentrecord/{record.pk}/change/"
    data = _form_data(superuser_client.get(url))
    use_project = next(key for key in data if key.startswith("uses-0-project"))

    response = superuser_client.post(
        url, {**data, "intended_uses": "Two spring adverts.", use_project: "Summer campaign 2027"}
    )

    assert response.status_code == 302
    (event,) = AuditEvent.objects.filter(action="consent.draft_changed")
    assert event.object_id == str(record.pk) and event.person_id == record.person_id
    assert event.before == {"intended_uses": record.intended_uses}
    assert event.after == {"intended_uses": "Two spring adverts."}
    (changed,) = event.detail["inlines"]["consent uses"]["changed"]
    assert changed.startswith("Summer campaign 2027:") and changed.endswith("(project)")
    assert ConsentRecord.objects.get(pk=record.pk).status == ConsentRecord.Status.DRAFT


@pytest.mark.django_db
def test_asset_admin_actions_are_audited_as_the_staff_members(superuser_client: Client, superuser):
    asset = AssetFactory(status=Asset.Status.QUEUED, next_attempt_at=timezone.now())

    superuser_client.post(
        "/admin/assets/asset/", {"action": "retry_assets", "_selected_action": [asset.pk]}
    )

    event = AuditEvent.objects.get(action="asset.retried")
    assert event.actor_id == superuser.pk and event.after == {"status": "queued"}


@pytest.mark.django_db
def test_a_signed_document_added_to_a_draft_is_audited_by_its_stored_name(
    superuser_client: Client,
):
    record = ConsentRecordFactory(uses=1)
    url = f"/admin/consent/consentrecord/{record.pk}/change/"
    data = _form_data(superuser_client.get(url))
    pdf = io.BytesIO()
    Image.new("RGB", (200, 280), "white").save(pdf, "PDF")
    document = ContentFile(pdf.getvalue(), name="signed.pdf")

    superuser_client.post(url, {**data, "signed_document": document})

    event = AuditEvent.objects.get(action="consent.draft_changed")
    record.refresh_from_db()
    assert event.before == {"signed_document": ""}
    assert event.after == {"signed_document": record.signed_document.name}
