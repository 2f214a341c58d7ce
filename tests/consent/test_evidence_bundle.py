"""The evidence bundle legal exports from a person's admin page, and the audit timelines shown
on people's and consent records' pages."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import zipfile
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from assets.models import Asset
from assets.signing import signed_file_url
from audit.admin import events_timeline
from audit.models import AuditEvent
from audit.services import audit_record
from consent import evidence
from consent.models import Person
from consent.services import consent_approve, consent_revoke, consent_submit
from tests.factories import (
    AssetFactory,
    AssetGroupFactory,
    ConsentRecordFactory,
    ConsentUseFactory,
    OutboundEmailFactory,
    PersonFactory,
    ReferenceCopyFactory,
    UpstreamSessionFactory,
    UserFactory,
)
from tests.upstream_helpers import SECRET_KEY
from verification.models import UpstreamSession

pytestmark = pytest.mark.django_db

DOCUMENT_A = b"%PDF-1.4 consent A, signed " + bytes(range(256)) * 64
DOCUMENT_B = b"%PDF-1.4 consent B, signed"


def _user(username: str, *codenames: str) -> Any:
    user = UserFactory(username=username)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def legal(client: Client) -> Client:
    client.force_login(_user("legal-1", "view_person", "export_evidence"))
    return client


def _export(client: Client, *people: Person) -> Any:
    return client.post(
        "/admin/consent/person/",
        {"action": "export_evidence_bundle", "_selected_action": [p.pk for p in people]},
    )


def _zip(response: Any) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


@pytest.fixture
def person(settings, queued) -> dict[str, Any]:
    """A person with two consent versions (one approved, one revoked), a verification, assets,
    and the secrets a bundle must never carry."""
    settings.ANYFAST_API_KEY = SECRET_KEY
    settings.PORTAL_PUBLIC_URL = "https://portal.example"
    reviewer = UserFactory(username="legal-reviewer")
    submitter = UserFactory(username="onboarding-clerk")  # four eyes: another user decides
    person = PersonFactory(legal_name="Ada Lovelace")
    approved = ConsentRecordFactory(
        person=person, complete=True, signed_document=ContentFile(DOCUMENT_A, name="a.pdf")
    )
    revoked = ConsentRecordFactory(
        person=person, complete=True, signed_document=ContentFile(DOCUMENT_B, name="b.pdf")
    )
    ConsentUseFactory(consent=revoked, project="Autumn campaign 2027")
    for record in (approved, revoked):
        consent_submit(record=record, actor=submitter)
        consent_approve(record=record, actor=reviewer, note="Complete and specific.")
    group = AssetGroupFactory(person=person, verified=True)
    withdrawn = AssetFactory(group=group, consent=revoked, active=True)
    consent_revoke(record=revoked, actor=reviewer, channel="email", reason="Changed her mind.")
    session = group.upstream_session
    invitation = session.invitation
    UpstreamSession.objects.filter(pk=session.pk).update(
        callback_params={"bytedToken": session.byted_token, "resultCode": "10000"}
    )
    failed_session = UpstreamSessionFactory(
        invitation=invitation,
        status=UpstreamSession.Status.EXPIRED,
        last_error_code="InvalidParameter.BytedToken",
    )
    UpstreamSession.objects.filter(pk=failed_session.pk).update(
        last_error=f"The specified BytedToken {failed_session.byted_token} has expired."
    )
    OutboundEmailFactory(about=invitation)
    active = AssetFactory(group=group, consent=approved, active=True)
    link = signed_file_url(active.file)
    failed = AssetFactory(
        group=group,
        consent=approved,
        status=Asset.Status.FAILED,
        error_code="InvalidParameter.URL",
        error_message=f"Could not download {link}",
    )
    copy = ReferenceCopyFactory(asset=active, user=UserFactory(username="producer-9"))
    audit_record(action="person.note", obj=person, person_id=person.pk, detail={"n": 1})
    audit_record(action="person.note", obj=PersonFactory(), detail={"n": 2})  # someone else
    return {
        "person": person,
        "approved": approved,
        "revoked": revoked,
        "invitation": invitation,
        "sessions": [session, failed_session],
        "assets": [active, failed],
        "withdrawn": withdrawn,
        "copy": copy,
        "secrets": [
            SECRET_KEY,
            invitation.invitation_token,
            invitation.code,
            invitation.display_code,
            session.byted_token,
            failed_session.byted_token,
            session.h5_link,
            failed_session.h5_link,
            link,
            link.split("/files/")[1].split("/")[0],  # the signed link's token
        ],
    }


# --- The bundle ---------------------------------------------------------------------------------


def test_the_bundle_holds_summary_json_documents_and_a_manifest_of_every_file(legal, person):
    approved, revoked = person["approved"], person["revoked"]

    response = _export(legal, person["person"])

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert re.fullmatch(
        rf'attachment; filename="evidence-person-{person["person"].pk}-\d{{8}}-\d{{6}}\.zip"',
        response["Content-Disposition"],
    )
    bundle = _zip(response)
    names = set(bundle.namelist())
    documents = {
        f"documents/consent-{approved.pk}-{approved.signed_document.name.rsplit('/', 1)[1]}",
        f"documents/consent-{revoked.pk}-{revoked.signed_document.name.rsplit('/', 1)[1]}",
    }
    assert names == {"summary.html", "evidence.json", "MANIFEST.sha256", *documents}
    lines = bundle.read("MANIFEST.sha256").decode().splitlines()
    listed = dict(reversed(line.split("  ", 1)) for line in lines)
    assert set(listed) == names - {"MANIFEST.sha256"}
    for name, digest in listed.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest)
        assert hashlib.sha256(bundle.read(name)).hexdigest() == digest, name
    contents = {bundle.read(name) for name in documents}
    assert contents == {DOCUMENT_A, DOCUMENT_B}  # byte for byte


def test_the_json_holds_consent_versions_verification_assets_and_checkable_events(legal, person):
    approved, revoked = person["approved"], person["revoked"]
    session, failed_session = person["sessions"]
    active, failed = person["assets"]
    events_before = list(
        AuditEvent.objects.filter(person_id=person["person"].pk).order_by("pk").values_list("pk")
    )

    data = json.loads(_zip(_export(legal, person["person"])).read("evidence.json"))

    assert data["person"]["legal_name"] == "Ada Lovelace"
    assert approved.pk in data["consents_in_force_today"]
    assert revoked.pk not in data["consents_in_force_today"]
    versions = {version["id"]: version for version in data["consent_versions"]}
    first, second = versions[approved.pk], versions[revoked.pk]
    assert (first["status"], second["status"]) == ("approved", "revoked")
    assert first["terms"]["consent_text_sha256"] == approved.consent_text_sha256
    assert first["review"]["reviewed_by"] == "legal-reviewer"
    assert first["review"]["review_note"] == "Complete and specific."
    assert first["revocation"] is None
    assert second["revocation"]["channel"] == "email"
    assert second["revocation"]["reason"] == "Changed her mind."
    assert [use["project"] for use in second["uses"]] == ["Spring campaign 2027",
                                                          "Autumn campaign 2027"]  # fmt: skip
    assert first["signed_document"]["sha256"] == hashlib.sha256(DOCUMENT_A).hexdigest()
    assert first["signed_document"]["size_bytes"] == len(DOCUMENT_A)
    (invitation,) = data["verification"]
    sessions = {row["id"]: row for row in invitation["upstream_sessions"]}
    assert sessions[session.pk]["byted_token"] == f"…{session.byted_token[-6:]}"
    assert sessions[session.pk]["callback"] == {"resultCode": "10000"}
    assert sessions[session.pk]["group_id"] == session.group_id
    assert sessions[failed_session.pk]["last_error"] == (
        f"The specified BytedToken …{failed_session.byted_token[-6:]} has expired."
    )
    assert invitation["emails"][0]["status"] == "queued"
    timeline = {entry["what"]: entry["detail"] for entry in invitation["timeline"]}
    assert {"Invited", "Upstream session created", "Confirmed", "Verified"} <= set(timeline)
    assert "code" not in timeline["Invited"]  # the code opens the invitation
    assets = {row["id"]: row for row in data["assets"]}
    assert assets[active.pk]["sha256"] == active.sha256
    assert assets[active.pk]["upstream_id"] == active.upstream_id
    assert assets[active.pk]["group_id"] == active.group.group_id
    assert "/files/***/" in assets[failed.pk]["error_message"]
    assert data["asset_groups"][0]["group_id"] == active.group.group_id
    (copy,) = data["reference_copies"]
    assert (copy["producer"], copy["asset"], copy["reference"]) == (
        "producer-9",
        active.pk,
        active.asset_uri,
    )
    assert copy["request_id"] == person["copy"].request_id
    (withdrawal,) = data["withdrawals"]  # the revoked consent's, its one asset to delete
    assert (withdrawal["consent"], withdrawal["reason"]) == (revoked.pk, "revoked")
    assert (withdrawal["asset"], withdrawal["upstream_id"]) == (
        person["withdrawn"].pk,
        person["withdrawn"].upstream_id,
    )
    assert withdrawal["status"] == "pending" and withdrawal["started_by"] == "legal-reviewer"
    events = data["audit_events"]
    assert [(event["id"],) for event in events] == events_before  # the export's own comes after
    assert {"consent.approve", "consent.revoke", "person.note"} <= {e["action"] for e in events}
    covered = data["audit_hash"]["covers"]
    for event in events:
        canonical = json.dumps({key: event[key] for key in covered}, sort_keys=True,
                               separators=(",", ":"))  # fmt: skip
        key = settings.AUDIT_CHAIN_KEYS[event["key_id"]]  # whoever holds the chain key
        assert hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest() == event["hash"]
    export = AuditEvent.objects.get(action="person.evidence_exported")
    assert data["audit_chain_head_at_export"] == export.previous_hash


def test_no_secret_reaches_any_file_of_the_bundle(legal, person):
    bundle = _zip(_export(legal, person["person"]))

    for name in bundle.namelist():
        content = bundle.read(name)
        for secret in person["secrets"]:
            assert secret.encode() not in content, (name, secret)


def test_the_summary_reads_as_the_evidence_for_people(legal, person):
    approved, revoked = person["approved"], person["revoked"]

    html = _zip(_export(legal, person["person"])).read("summary.html").decode()

    assert "<h1>Evidence bundle: Ada Lovelace</h1>" in html
    assert f"Consent record #{approved.pk}: Approved" in html and "in force today" in html
    assert f"Consent record #{revoked.pk}: Revoked" in html and "Changed her mind." in html
    assert "Autumn campaign 2027" in html and "Consent text SHA-256" in html
    assert hashlib.sha256(DOCUMENT_A).hexdigest() in html
    assert person["assets"][0].sha256 in html and person["assets"][0].upstream_id in html
    assert "Consent approved" in html and "Consent revoked" in html  # events, in words
    assert "<h2>Reference copies</h2>" in html and "<td>producer-9</td>" in html
    assert "<h2>Withdrawals upstream</h2>" in html and person["withdrawn"].upstream_id in html
    assert "<script" not in html


def test_exporting_is_audited_with_the_bundles_hashes(legal, person):
    response = _export(legal, person["person"])
    content = b"".join(response.streaming_content)

    event = AuditEvent.objects.get(action="person.evidence_exported")
    assert event.actor_label == "legal-1" and event.person_id == person["person"].pk
    assert event.detail["sha256"] == hashlib.sha256(content).hexdigest()
    manifest = zipfile.ZipFile(io.BytesIO(content)).read("MANIFEST.sha256")
    assert event.detail["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert event.detail["files"] == 5


def test_more_sections_come_from_registered_providers(legal, person, monkeypatch):
    def copies(someone: Person) -> list[dict[str, Any]]:
        return [{"asset": "asset://a-1", "copied_by": "producer-1", "person": someone.pk}]

    monkeypatch.setattr(evidence, "SECTIONS", [])
    evidence.evidence_section("reference_copies", "Reference copies")(copies)

    bundle = _zip(_export(legal, person["person"]))

    data = json.loads(bundle.read("evidence.json"))
    assert data["reference_copies"] == [
        {"asset": "asset://a-1", "copied_by": "producer-1", "person": person["person"].pk}
    ]
    html = bundle.read("summary.html").decode()
    assert "<h2>Reference copies</h2>" in html and "<td>producer-1</td>" in html


def test_a_bundle_without_consent_or_verification_still_exports(legal):
    someone = PersonFactory()

    bundle = _zip(_export(legal, someone))

    assert set(bundle.namelist()) == {"summary.html", "evidence.json", "MANIFEST.sha256"}
    data = json.loads(bundle.read("evidence.json"))
    assert data["consent_versions"] == [] and data["verification"] == []


# --- Who may export -----------------------------------------------------------------------------


def test_staff_without_the_export_permission_get_no_bundle_and_no_action(client: Client):
    client.force_login(_user("onboarding-1", "view_person", "change_person"))
    someone = PersonFactory()

    changelist = client.get("/admin/consent/person/").content.decode()
    response = _export(client, someone)

    assert "export_evidence_bundle" not in changelist
    assert response.get("Content-Type") != "application/zip"
    assert not AuditEvent.objects.filter(action="person.evidence_exported").exists()
    page = client.get(f"/admin/consent/person/{someone.pk}/change/").content.decode()
    assert "Export evidence bundle" not in page


def test_the_export_is_offered_to_legal_on_the_list_and_the_person_page(legal):
    someone = PersonFactory()

    assert "Export evidence bundle" in legal.get("/admin/consent/person/").content.decode()
    page = legal.get(f"/admin/consent/person/{someone.pk}/change/").content.decode()
    assert 'value="export_evidence_bundle"' in page


def test_one_bundle_is_one_person(legal):
    response = _export(legal, PersonFactory(), PersonFactory())

    assert response.status_code == 302
    assert not AuditEvent.objects.filter(action="person.evidence_exported").exists()
    messages = [str(m) for m in response.wsgi_request._messages]
    assert messages == ["Select one person: a bundle holds one person's evidence."]


# --- Timelines ----------------------------------------------------------------------------------


def test_the_person_page_shows_their_events_in_words_with_before_and_after(superuser_client):
    person = PersonFactory()
    event = audit_record(
        action="person.changed",
        obj=person,
        person_id=person.pk,
        actor_label="onboarding-7",
        before={"email": "old@example.com"},
        after={"email": "new@example.com"},
    )
    audit_record(action="invitation.created", obj=person, person_id=person.pk)
    audit_record(action="person.changed", obj=PersonFactory(), actor_label="not-this-person")

    html = superuser_client.get(f"/admin/consent/person/{person.pk}/change/").content.decode()

    assert 'class="audit-timeline"' in html
    assert (
        f'href="/admin/audit/auditevent/{event.pk}/change/">Person&#x27;s details changed' in html
    )
    assert "Invited to verify" in html and "by onboarding-7" in html
    assert "old@example.com" in html and "new@example.com" in html
    assert "not-this-person" not in html
    assert html.index("Invited to verify") < html.index("Person&#x27;s details changed")


def test_the_consent_page_shows_its_events_and_those_of_its_versions(superuser_client):
    earlier = ConsentRecordFactory(approved=True)
    record = ConsentRecordFactory(person=earlier.person, supersedes=earlier, uses=1)
    use = record.uses.get()
    audit_record(action="consent.approve", obj=earlier, person_id=earlier.person_id)
    audit_record(action="consent.new_version", obj=record, person_id=record.person_id)
    audit_record(action="consent.use_typo", obj=use, person_id=record.person_id)
    audit_record(action="consent.reject", obj=ConsentRecordFactory(), actor_label="elsewhere")

    html = superuser_client.get(f"/admin/consent/consentrecord/{record.pk}/change/").content
    html = html.decode()

    assert "Consent approved" in html and "New consent version drafted" in html
    assert "Consent use typo" in html  # an action without a label reads as its name
    assert "elsewhere" not in html


def test_timelines_are_hidden_from_staff_who_may_not_read_the_audit_trail(client: Client):
    client.force_login(_user("producer-1", "view_person", "view_consentrecord"))
    record = ConsentRecordFactory()
    audit_record(action="consent.created", obj=record, person_id=record.person_id)

    person_page = client.get(f"/admin/consent/person/{record.person_id}/change/").content
    record_page = client.get(f"/admin/consent/consentrecord/{record.pk}/change/").content

    assert b"audit-timeline" not in person_page and b"audit-timeline" not in record_page


@pytest.mark.parametrize("url", ["/admin/consent/person/{person}/change/",
                                 "/admin/consent/consentrecord/{record}/change/"])  # fmt: skip
def test_a_timeline_costs_the_same_queries_for_one_event_and_for_many(superuser_client, url):
    record = ConsentRecordFactory(uses=1)
    page = url.format(person=record.person_id, record=record.pk)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert superuser_client.get(page).status_code == 200
        return len(captured)

    audit_record(action="consent.created", obj=record, person_id=record.person_id)
    one = queries()
    for _ in range(25):
        audit_record(action="consent.draft_changed", obj=record, person_id=record.person_id)

    assert queries() == one


def test_a_long_timeline_shows_the_newest_events_and_links_to_all():
    person = PersonFactory()
    for number in range(4):
        audit_record(action="person.changed", obj=person, person_id=person.pk, detail={"n": number})

    html = events_timeline(AuditEvent.objects.filter(person_id=person.pk), limit=3, all_url="/all")

    assert html.count("<li>") == 3 and "n: 0" not in html and "n: 3" in html
    assert 'Only the newest 3 are shown: <a href="/all">all events</a>' in html


def test_the_audit_list_says_what_happened_in_words(superuser_client):
    record = ConsentRecordFactory()
    audit_record(action="consent.submit", obj=record, person_id=record.person_id)

    html = superuser_client.get("/admin/audit/auditevent/").content.decode()

    assert "Consent submitted for review" in html
