"""Retention (BIPA): biometric media destroyed once the purpose ended, after the withdrawal is
confirmed upstream, never under a legal hold; the records that prove the consent stay."""

from __future__ import annotations

import datetime
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from assets import tasks
from assets.models import Asset, Withdrawal, WithdrawalItem, WithdrawalOutcome
from audit.models import AuditEvent
from consent import services
from consent.models import Person
from tests.factories import AssetFactory, AssetGroupFactory, ConsentRecordFactory, UserFactory
from tests.portal.test_settings import _run_settings

pytestmark = pytest.mark.django_db

REVOKED_ON = datetime.datetime(2026, 3, 2, 10, tzinfo=datetime.UTC)


def ended_consent_with_asset(time_machine, *, legal_hold: bool = False) -> Asset:
    """A person whose consent was revoked on ``REVOKED_ON``; their one asset (with its
    location-stripped copy) is still stored, its withdrawal not yet confirmed."""
    time_machine.move_to(REVOKED_ON - datetime.timedelta(days=60))
    group = AssetGroupFactory(verified=True, person__legal_hold=legal_hold)
    consent = group.upstream_session.invitation.consent
    asset = AssetFactory(
        group=group,
        consent=consent,
        active=True,
        original_filename="ada-portrait.png",
        upstream_copy=ContentFile(b"stripped bytes", name="stripped.png"),
    )
    time_machine.move_to(REVOKED_ON)
    services.consent_revoke(
        record=consent, actor=None, channel="in_writing", reason="No longer wishes to appear."
    )
    return asset


def confirm_upstream(asset: Asset) -> None:
    """The upstream confirmed the withdrawal of ``asset`` (and of its group)."""
    withdrawal = Withdrawal.objects.get(consent=asset.consent)
    withdrawal.items.update(
        status=WithdrawalItem.Status.CONFIRMED,
        outcome=WithdrawalOutcome.DELETED,
        confirmed_at=REVOKED_ON + datetime.timedelta(minutes=1),
    )
    Withdrawal.objects.filter(pk=withdrawal.pk).update(confirmed_at=REVOKED_ON)
    Asset.objects.filter(pk=asset.pk).update(status=Asset.Status.WITHDRAWN)


def stored(asset: Asset, private_files: Path) -> list[bool]:
    asset.refresh_from_db()
    return [
        bool(name) and (private_files / name).exists()
        for name in (asset.file.name, asset.upstream_copy.name)
    ]


def retention(*args: str) -> str:
    out = StringIO()
    call_command("apply_retention", *args, stdout=out)
    return out.getvalue()


def test_a_dry_run_reports_what_would_be_removed_and_why_and_changes_nothing(
    time_machine, private_files
):
    asset = ended_consent_with_asset(time_machine)
    confirm_upstream(asset)
    events = AuditEvent.objects.count()
    time_machine.move_to(REVOKED_ON + datetime.timedelta(days=45))

    report = retention("--dry-run")

    assert "(dry run, nothing removed)" in report
    assert f"would remove: asset #{asset.pk} ada-portrait.png" in report
    assert f"consent #{asset.consent_id} revoked on 2026-03-02 (45 days ago" in report
    assert "withdrawal confirmed upstream" in report
    assert "Would remove 2 file(s) of 1 asset(s)" in report
    assert stored(asset, private_files) == [True, True]
    assert asset.media_destroyed_at is None
    assert AuditEvent.objects.count() == events


def test_retention_destroys_the_files_and_keeps_the_proof(time_machine, private_files):
    asset = ended_consent_with_asset(time_machine)
    confirm_upstream(asset)
    names = [asset.file.name, asset.upstream_copy.name]
    time_machine.move_to(REVOKED_ON + datetime.timedelta(days=31))

    report = retention()

    assert "Removed 2 file(s) of 1 asset(s)" in report
    asset.refresh_from_db()
    assert not (private_files / names[0]).exists() and not (private_files / names[1]).exists()
    assert asset.media_destroyed_at is not None
    assert (asset.file.name, asset.upstream_copy.name) == ("", "")
    # What proves the consent and its end stays: hashes, ids, dates, the withdrawal.
    assert asset.sha256 and asset.upstream_id and asset.consent.status == "revoked"
    assert asset.withdrawal_items.get().confirmed_at is not None
    event = AuditEvent.objects.get(action="asset.media_destroyed")
    assert (event.object_id, event.person_id) == (str(asset.pk), asset.group.person_id)
    assert event.before == {"files": names} and event.detail["sha256"] == asset.sha256
    # Nothing is left to do the next time.
    assert "Removed 0 file(s) of 0 asset(s)" in retention()


def test_files_stay_within_the_retention_period(time_machine, private_files, settings):
    settings.BIOMETRIC_RETENTION_DAYS = 30
    asset = ended_consent_with_asset(time_machine)
    confirm_upstream(asset)
    time_machine.move_to(REVOKED_ON + datetime.timedelta(days=29))

    report = retention()

    assert "within the 30-day retention period" in report
    assert "removable from 2026-04-01" in report
    assert stored(asset, private_files) == [True, True]


def test_files_stay_until_the_upstream_confirmed_the_withdrawal(time_machine, private_files):
    asset = ended_consent_with_asset(time_machine)  # its withdrawal is still pending
    time_machine.move_to(REVOKED_ON + datetime.timedelta(days=400))

    report = retention()

    assert "the upstream has not confirmed its withdrawal yet" in report
    assert stored(asset, private_files) == [True, True]


def test_a_legal_hold_keeps_the_files_until_it_is_lifted(time_machine, private_files):
    asset = ended_consent_with_asset(time_machine, legal_hold=True)
    confirm_upstream(asset)
    time_machine.move_to(REVOKED_ON + datetime.timedelta(days=90))

    report = retention()
    assert f"kept: asset #{asset.pk}" in report and "is under a legal hold" in report
    assert stored(asset, private_files) == [True, True]

    legal = UserFactory(username="legal")
    services.person_set_legal_hold(
        person=asset.group.person, hold=False, actor=legal, note="Matter 2026-17 settled."
    )
    assert tasks.apply_retention() == 1  # the daily beat task
    assert stored(asset, private_files) == [False, False]
    lifted = AuditEvent.objects.get(action="person.legal_hold_lifted")
    assert (
        lifted.actor_id == legal.pk and lifted.after["legal_hold_note"] == "Matter 2026-17 settled."
    )


def test_assets_of_a_consent_in_force_are_never_considered(time_machine, private_files):
    time_machine.move_to(REVOKED_ON)
    group = AssetGroupFactory(verified=True)
    asset = AssetFactory(
        group=group, consent=group.upstream_session.invitation.consent, active=True
    )
    time_machine.move_to(REVOKED_ON + datetime.timedelta(days=100))

    assert "Removed 0 file(s) of 0 asset(s)" in retention()
    assert stored(asset, private_files)[0]


def test_a_legal_hold_needs_a_reason_and_changes_something():
    person = Person.objects.create(legal_name="Ada Example")
    with pytest.raises(ValidationError, match="Say why"):
        services.person_set_legal_hold(person=person, hold=True, actor=None, note=" ")
    with pytest.raises(ValidationError, match="not under a legal hold"):
        services.person_set_legal_hold(person=person, hold=False, actor=None, note="x")

    services.person_set_legal_hold(person=person, hold=True, actor=None, note="Subpoena.")

    person.refresh_from_db()
    assert person.legal_hold and person.legal_hold_note == "Subpoena."
    assert AuditEvent.objects.filter(action="person.legal_hold_placed", object_id=person.pk)


def test_legal_places_a_hold_from_the_people_list_with_a_reason(client: Client):
    person = Person.objects.create(legal_name="Ada Example")
    legal = UserFactory(username="legal")
    legal.user_permissions.add(
        Permission.objects.get(codename="view_person"),
        Permission.objects.get(codename="legal_hold_person"),
    )
    client.force_login(legal)
    url = reverse("admin:consent_person_changelist")

    asked = client.post(url, {"action": "place_legal_hold", "_selected_action": [person.pk]})
    assert asked.status_code == 200 and "Why?" in asked.content.decode()

    client.post(
        url,
        {"action": "place_legal_hold", "_selected_action": [person.pk], "confirm": "yes",
         "note": "Litigation hold, matter 2026-17."},
    )  # fmt: skip
    person.refresh_from_db()
    assert person.legal_hold and person.legal_hold_note == "Litigation hold, matter 2026-17."


def test_staff_without_the_permission_are_not_offered_the_legal_hold(client: Client):
    person = Person.objects.create(legal_name="Ada Example")
    onboarding = UserFactory(username="onboarding")
    onboarding.user_permissions.add(
        Permission.objects.get(codename="view_person"),
        Permission.objects.get(codename="change_person"),
    )
    client.force_login(onboarding)
    url = reverse("admin:consent_person_changelist")

    page = client.get(url).content.decode()
    assert "place_legal_hold" not in page
    client.post(
        url,
        {"action": "place_legal_hold", "_selected_action": [person.pk], "confirm": "yes",
         "note": "Trying anyway."},
    )  # fmt: skip
    assert not Person.objects.get(pk=person.pk).legal_hold


def test_the_retention_period_cannot_exceed_three_years(tmp_path: Path):
    result = _run_settings(
        tmp_path, "BIOMETRIC_RETENTION_DAYS", DEBUG="true", BIOMETRIC_RETENTION_DAYS="1096"
    )
    assert result.returncode != 0 and "BIOMETRIC_RETENTION_DAYS" in result.stderr


def test_the_consent_record_keeps_its_evidence_when_its_media_is_destroyed(
    time_machine, private_files
):
    time_machine.move_to(REVOKED_ON)
    consent = ConsentRecordFactory(approved=True, complete=True)
    assert consent.signed_document.name  # not biometric media: retention never touches it
    group = AssetGroupFactory(person=consent.person, verified=True)
    asset = AssetFactory(group=group, consent=consent, active=True)
    services.consent_revoke(record=consent, actor=None, channel="email", reason="None.")
    confirm_upstream(asset)
    time_machine.move_to(REVOKED_ON + datetime.timedelta(days=100))

    retention()

    consent.refresh_from_db()
    assert (private_files / consent.signed_document.name).exists()
    assert stored(asset, private_files) == [False, False]
