"""Consents that end by their date: the beat task that expires them (and starts their withdrawal),
and the warnings sent before, with frozen time."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from assets.models import Asset, Withdrawal, WithdrawalReason
from audit.models import AuditEvent
from consent import tasks
from consent.models import ConsentRecord, Language
from mail import services as mail_services
from mail import tasks as mail_tasks
from mail.models import OutboundEmail
from tests.factories import AssetFactory, AssetGroupFactory, ConsentRecordFactory, UserFactory

pytestmark = pytest.mark.django_db

LAST_DAY = datetime.date(2026, 12, 31)


def at(day: datetime.date, hour: int = 9) -> datetime.datetime:
    return datetime.datetime.combine(
        day, datetime.time(hour), tzinfo=timezone.get_current_timezone()
    )


@pytest.fixture
def ending(time_machine) -> ConsentRecord:
    """An approved consent whose last day is ``LAST_DAY``, recorded and reviewed by staff."""
    time_machine.move_to(at(datetime.date(2026, 1, 5)))
    return ConsentRecordFactory(
        approved=True,
        starts_on=datetime.date(2026, 1, 5),
        expires_on=LAST_DAY,
        created_by=UserFactory(username="onboarding", email="onboarding@studio.test"),
        reviewed_by=UserFactory(username="reviewer", email="legal@studio.test"),
        person__preferred_language=Language.CHINESE_SIMPLIFIED,
        person__email="talent@example.test",
    )


def test_a_consent_expires_the_day_after_its_last_day_and_its_withdrawal_starts(
    ending, time_machine, django_capture_on_commit_callbacks
):
    group = AssetGroupFactory(person=ending.person, verified=True)
    asset = AssetFactory(group=group, consent=ending, active=True)

    time_machine.move_to(at(LAST_DAY, 23))
    assert tasks.expire_consents() == []  # its last day: still in force
    assert list(Asset.objects.usable_by_producers()) == [asset]

    time_machine.move_to(at(LAST_DAY + datetime.timedelta(days=1), 0))
    with django_capture_on_commit_callbacks() as callbacks:
        assert tasks.expire_consents() == [ending.pk]

    ending.refresh_from_db()
    assert ending.status == ConsentRecord.Status.EXPIRED and ending.ended_at is not None
    assert not Asset.objects.usable_by_producers().exists()
    withdrawal = Withdrawal.objects.get(consent=ending)
    assert withdrawal.reason == WithdrawalReason.EXPIRED
    assert (withdrawal.requested_by, withdrawal.requested_by_label) == (None, "scheduler")
    assert [item.asset for item in withdrawal.items.filter(asset__isnull=False)] == [asset]
    assert callbacks  # its items' tasks leave on commit
    events = AuditEvent.objects.filter(person_id=ending.person_id).values_list(
        "action", "actor_label"
    )
    assert {("consent.expire", "scheduler"), ("withdrawal.started", "scheduler")} <= set(events)


def test_running_the_expiry_again_ends_nothing_twice(ending, time_machine):
    time_machine.move_to(at(LAST_DAY + datetime.timedelta(days=2)))

    assert tasks.expire_consents() == [ending.pk]
    assert tasks.expire_consents() == []
    assert Withdrawal.objects.filter(consent=ending).count() == 1


def test_the_person_and_the_staff_are_warned_once_the_configured_days_before_the_end(
    ending, time_machine, queued, django_capture_on_commit_callbacks
):
    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=31)))
    assert tasks.warn_expiring_consents() == []  # 31 days before: not yet

    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=30)))
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.warn_expiring_consents() == [ending.pk]

    emails = OutboundEmail.objects.about(ending).order_by("pk")
    assert [(e.to, e.kind, e.language) for e in emails] == [
        ("talent@example.test", "consent_expiry_warning", Language.CHINESE_SIMPLIFIED),
        ("onboarding@studio.test", "consent_expiry_warning_staff", Language.ENGLISH),
        ("legal@studio.test", "consent_expiry_warning_staff", Language.ENGLISH),
    ]
    assert queued.of(mail_tasks.send_email) == [(email.pk,) for email in emails]
    ending.refresh_from_db()
    assert ending.expiry_warning_sent_at is not None  # writable on an approved record
    event = AuditEvent.objects.get(action="consent.expiry_warning_sent")
    assert event.detail["days_left"] == 30 and len(event.detail["emails"]) == 3

    # Every later run (hourly, daily) sends nothing more.
    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=29)))
    assert tasks.warn_expiring_consents() == []
    assert OutboundEmail.objects.about(ending).count() == 3


def test_the_warning_period_is_configurable(ending, time_machine, queued, settings):
    settings.CONSENT_EXPIRY_WARNING_DAYS = 7
    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=8)))
    assert tasks.warn_expiring_consents() == []

    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=7)))
    assert tasks.warn_expiring_consents() == [ending.pk]


def test_ended_or_open_ended_consents_are_not_warned(time_machine, queued):
    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=3)))
    ConsentRecordFactory(approved=True, expires_on=None)
    ConsentRecordFactory(revoked=True, expires_on=LAST_DAY)
    ConsentRecordFactory(expires_on=LAST_DAY)  # a draft

    assert tasks.warn_expiring_consents() == []
    assert not OutboundEmail.objects.exists()


def test_the_warning_reaches_the_person_in_their_language_and_staff_with_the_record_link(
    ending, time_machine, queued, mailoutbox
):
    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=10)))
    tasks.warn_expiring_consents()

    for email in OutboundEmail.objects.about(ending).order_by("pk"):
        sent = mail_services.email_send(email_id=email.pk)
        assert sent.status == OutboundEmail.Status.SENT

    to_person, *to_staff = mailoutbox
    assert to_person.to == ["talent@example.test"]
    assert to_person.subject == "The studio：您的同意书将于 2026-12-31 到期"  # noqa: RUF001
    assert "您授权 The studio 使用您肖像的同意书将于 2026-12-31 到期。" in to_person.body
    assert f"{settings.BIOMETRIC_RETENTION_DAYS} 天后销毁" in to_person.body
    html = to_person.alternatives[0][0]
    assert "同意书" in html and '<html lang="zh-hans">' in html
    assert {message.to[0] for message in to_staff} == {
        "onboarding@studio.test",
        "legal@studio.test",
    }
    for message in to_staff:
        assert message.subject == f"Consent of {ending.person} ends on 2026-12-31"
        assert "in 10 days" in message.body
        assert f"/admin/consent/consentrecord/{ending.pk}/change/" in message.body


def test_a_person_without_an_address_is_marked_warned_and_staff_still_told(time_machine, queued):
    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=5)))
    consent = ConsentRecordFactory(
        approved=True,
        expires_on=LAST_DAY,
        person__email="",
        created_by=UserFactory(username="onboarding", email="onboarding@studio.test"),
    )

    assert tasks.warn_expiring_consents() == [consent.pk]

    assert list(OutboundEmail.objects.values_list("to", flat=True)) == ["onboarding@studio.test"]


def test_beat_runs_the_expiry_the_warnings_the_sweeper_and_retention():
    tasks_scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "consent.tasks.expire_consents",
        "consent.tasks.warn_expiring_consents",
        "assets.tasks.sweep_withdrawals",
        "assets.tasks.apply_retention",
    } <= tasks_scheduled


@pytest.mark.parametrize(
    ("language", "subject", "sentence"),
    [
        (
            Language.ENGLISH,
            "The studio: your consent ends on 2026-12-31",
            "The consent you gave The studio to use your likeness ends on 2026-12-31.",
        ),
        (
            Language.CHINESE_SIMPLIFIED,
            "The studio：您的同意书将于 2026-12-31 到期",  # noqa: RUF001
            "您授权 The studio 使用您肖像的同意书将于 2026-12-31 到期。",
        ),
        (
            Language.CHINESE_TRADITIONAL,
            "The studio：您的同意書將於 2026-12-31 到期",  # noqa: RUF001
            "您授權 The studio 使用您肖像的同意書將於 2026-12-31 到期。",
        ),
    ],
)
def test_each_person_is_warned_in_their_own_language(
    time_machine, queued, mailoutbox, language, subject, sentence
):
    time_machine.move_to(at(LAST_DAY - datetime.timedelta(days=1)))
    consent = ConsentRecordFactory(
        approved=True, expires_on=LAST_DAY, person__preferred_language=language
    )
    tasks.warn_expiring_consents()

    mail_services.email_send(email_id=OutboundEmail.objects.about(consent).get().pk)

    assert (mailoutbox[0].subject, mailoutbox[0].to) == (subject, [consent.person.email])
    assert sentence in mailoutbox[0].body
