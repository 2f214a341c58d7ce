"""Invitations: create, email, open, resend, cancel, reissue, expire — and their refusals.

No upstream call happens here (invitations are the portal's own), so these run without the
live server.
"""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from consent import services
from mail import services as mail_services
from mail import tasks as mail_tasks
from mail.models import EmailStatus, OutboundEmail
from tests.factories import (
    ConsentRecordFactory,
    OutboundEmailFactory,
    PersonFactory,
    UserFactory,
    VerificationSessionFactory,
)
from verification.models import VerificationSession, normalise_code
from verification.services import invitations
from verification.timeline import invitation_timeline

pytestmark = pytest.mark.django_db

Status = VerificationSession.Status


def _invite(person=None, **kwargs):
    person = person or PersonFactory()
    consent = kwargs.pop("consent", None) or ConsentRecordFactory(person=person, approved=True)
    return invitations.invitation_create(
        person=person, consent=consent, created_by=kwargs.pop("by", None), **kwargs
    )


def test_inviting_records_an_email_and_sends_it_after_commit_with_link_and_code(
    queued, django_capture_on_commit_callbacks, settings
):
    settings.PORTAL_PUBLIC_URL = "https://portal.studio.test"
    staff = UserFactory(first_name="Maya", last_name="Lind")
    with django_capture_on_commit_callbacks(execute=True):
        invitation = _invite(PersonFactory(email="ada@talent.test", display_name="Ada"), by=staff)
        assert queued.calls == []  # nothing leaves before commit

    (email_id,) = queued.of(mail_tasks.send_email)
    email = OutboundEmail.objects.get(pk=email_id[0])
    assert (email.to, email.kind, email.status) == ("ada@talent.test", "invitation", "queued")

    sent = mail_services.email_send(email_id=email.pk)

    assert sent.status == EmailStatus.SENT and sent.sent_at and sent.attempts == 1
    (message,) = mail.outbox
    link = f"https://portal.studio.test/verify/{invitation.invitation_token}/"
    assert message.to == ["ada@talent.test"]
    assert message.subject == email.subject == "The studio: please verify your identity"
    assert link in message.body and invitation.display_code in message.body
    assert "Maya Lind at The studio invites you" in message.body
    html = message.alternatives[0][0]
    assert f'href="{link}"' in html and invitation.display_code in html


@pytest.mark.parametrize(
    ("language", "subject", "phrase"),
    [
        ("zh", "The studio：请验证您的身份", "开始验证"),  # noqa: RUF001
        ("zh-Hant", "The studio：請驗證您的身分", "開始驗證"),  # noqa: RUF001
    ],
)
def test_the_invitation_email_is_in_the_persons_language(queued, language, subject, phrase):
    invitation = _invite(PersonFactory(preferred_language=language), send_email=False)
    email = invitations.invitation_send_email(invitation=invitation)

    mail_services.email_send(email_id=email.pk)

    (message,) = mail.outbox
    assert message.subject == subject
    assert phrase in message.body and phrase in message.alternatives[0][0]


def test_an_email_is_sent_once_even_when_its_task_runs_twice(queued):
    email = OutboundEmailFactory()

    mail_services.email_send(email_id=email.pk)
    mail_services.email_send(email_id=email.pk)

    assert len(mail.outbox) == 1


def test_a_failing_mail_server_is_recorded_and_retried_then_the_email_fails(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens there
    email = OutboundEmailFactory()

    first = mail_services.email_send(email_id=email.pk)
    assert (first.status, first.attempts) == (EmailStatus.QUEUED, 1)
    assert "ConnectionRefusedError" in first.last_error
    assert mail_services.email_send(email_id=email.pk).attempts == 1  # not due again yet
    last = first
    for _ in range(mail_services.MAX_ATTEMPTS - 1):
        with time_machine.travel(last.next_attempt_at, tick=False):
            last = mail_services.email_send(email_id=email.pk)

    assert (last.status, last.attempts) == (EmailStatus.FAILED, mail_services.MAX_ATTEMPTS)


def test_a_person_without_email_is_invited_without_an_email(queued):
    invitation = _invite(PersonFactory(email=""))

    assert invitation.status == Status.INVITED
    assert not invitation.emails.exists()


def test_a_second_open_invitation_for_the_same_person_is_refused_clearly(queued):
    first = _invite()

    with pytest.raises(invitations.VerificationRefused, match="already has an open invitation"):
        _invite(first.person)


def test_an_overdue_invitation_does_not_block_a_new_one(queued):
    first = _invite()
    with time_machine.travel(first.expires_at + datetime.timedelta(seconds=1)):
        second = _invite(first.person)

    first.refresh_from_db()
    assert first.status == Status.EXPIRED and second.status == Status.INVITED


@pytest.mark.parametrize("trait", ["revoked"])
def test_a_revoked_consent_cannot_back_an_invitation(queued, trait):
    person = PersonFactory()
    consent = ConsentRecordFactory(person=person, **{trait: True})

    with pytest.raises(invitations.VerificationRefused, match="revoked"):
        invitations.invitation_create(person=person, consent=consent, created_by=None)


def test_another_persons_consent_cannot_back_an_invitation(queued):
    with pytest.raises(invitations.VerificationRefused, match="another person's"):
        invitations.invitation_create(
            person=PersonFactory(), consent=ConsentRecordFactory(), created_by=None
        )


def test_an_invitation_lives_for_the_configured_number_of_days(queued, settings):
    settings.VERIFICATION_INVITATION_TTL_DAYS = 3
    with time_machine.travel("2026-11-24 12:00Z", tick=False):
        invitation = _invite()

    assert invitation.expires_at == datetime.datetime(2026, 11, 27, 12, tzinfo=datetime.UTC)


def test_codes_use_an_unambiguous_alphabet_and_forgive_typing():
    invitation = VerificationSessionFactory()

    assert len(invitation.code) == 8 and not set(invitation.code) & set("01OIL")
    typed = f" {invitation.code[:4].lower()}-{invitation.code[4:]} "
    assert invitations.invitation_find_by_code(code=normalise_code(typed)) == invitation


def test_a_code_finds_only_an_open_invitation():
    ended = VerificationSessionFactory(status=Status.CANCELLED)

    assert invitations.invitation_find_by_code(code=ended.code) is None


def test_opening_marks_the_invitation_opened_once():
    invitation = VerificationSessionFactory()

    with time_machine.travel(timezone.now() + datetime.timedelta(minutes=5), tick=False):
        opened = invitations.invitation_open(token=invitation.invitation_token)
    first_opened_at = opened.opened_at
    again = invitations.invitation_open(token=invitation.invitation_token)

    assert opened.status == again.status == Status.OPENED
    assert again.opened_at == first_opened_at


def test_opening_an_unknown_link_is_refused():
    with pytest.raises(invitations.InvitationUnavailable):
        invitations.invitation_open(token="not-a-token")


def test_opening_an_overdue_invitation_expires_it():
    invitation = VerificationSessionFactory()

    with time_machine.travel(invitation.expires_at + datetime.timedelta(seconds=1)):
        opened = invitations.invitation_open(token=invitation.invitation_token)

    assert opened.status == Status.EXPIRED and opened.ended_at == invitation.expires_at


def test_the_sweep_expires_only_overdue_open_invitations():
    overdue = VerificationSessionFactory()
    fresh = VerificationSessionFactory()
    VerificationSession.objects.filter(pk=overdue.pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    assert invitations.invitation_expire_overdue() == 1
    assert invitations.invitation_expire_overdue() == 0
    overdue.refresh_from_db()
    fresh.refresh_from_db()
    assert (overdue.status, fresh.status) == (Status.EXPIRED, Status.INVITED)


def test_resending_sends_the_same_link_again(queued):
    invitation = _invite(send_email=False)

    invitations.invitation_resend(invitation=invitation, by=None)
    invitations.invitation_resend(invitation=invitation, by=None)

    assert invitation.emails.count() == 2


def test_resending_an_ended_invitation_is_refused(queued):
    invitation = VerificationSessionFactory(status=Status.CANCELLED)

    with pytest.raises(invitations.InvitationUnavailable, match="cancelled"):
        invitations.invitation_resend(invitation=invitation, by=None)


def test_emailing_a_person_without_an_address_is_refused(queued):
    invitation = VerificationSessionFactory(person__email="")

    with pytest.raises(invitations.VerificationRefused, match="no email address"):
        invitations.invitation_send_email(invitation=invitation)


def test_cancelling_ends_the_invitation_and_a_second_cancel_is_refused():
    staff = UserFactory()
    invitation = VerificationSessionFactory()

    cancelled = invitations.invitation_cancel(invitation=invitation, by=staff)

    assert (cancelled.status, cancelled.ended_by) == (Status.CANCELLED, staff)
    with pytest.raises(invitations.InvitationUnavailable, match="already cancelled"):
        invitations.invitation_cancel(invitation=invitation, by=staff)


def test_reissuing_replaces_the_invitation_with_a_new_link_and_code(queued):
    staff = UserFactory()
    old = _invite(send_email=False)

    new = invitations.invitation_reissue(invitation=old, by=staff)

    old.refresh_from_db()
    assert old.status == Status.CANCELLED and old.replaced_by == new
    assert new.status == Status.INVITED and new.consent == old.consent
    assert new.invitation_token != old.invitation_token and new.code != old.code
    assert new.emails.count() == 1
    with pytest.raises(invitations.VerificationRefused, match="already reissued"):
        invitations.invitation_reissue(invitation=old, by=staff)


def test_a_verified_invitation_is_not_reissued():
    with pytest.raises(invitations.VerificationRefused, match="verified"):
        invitations.invitation_reissue(
            invitation=VerificationSessionFactory(verified=True), by=None
        )


def test_the_timeline_tells_emails_cancellation_and_reissue_in_order(queued, settings):
    staff = UserFactory(username="maya")
    old = _invite(PersonFactory(email="ada@talent.test"), by=staff)
    sent, failed = old.emails.get(), OutboundEmailFactory(about=old)
    mail_services.email_send(email_id=sent.pk)
    OutboundEmail.objects.filter(pk=failed.pk).update(
        status=EmailStatus.FAILED,
        attempts=5,
        last_error="SMTPRecipientsRefused: 550",
        updated_at=timezone.now(),
    )
    invitations.invitation_reissue(invitation=old, by=staff, send_email=False)

    entries = invitation_timeline(VerificationSession.objects.get(pk=old.pk))

    assert [entry.label for entry in entries] == [
        "Invited",
        "Email sent",
        "Email failed",
        "Cancelled",
        "Reissued",
    ]
    assert entries[0].detail.startswith("Invitation created by maya; valid until ")
    assert old.display_code not in entries[0].detail  # the code is no timeline's
    assert entries[2].tone == "red" and "550" in entries[2].detail
    assert "resend" in entries[2].explanation
    assert entries[3].detail == "Invitation cancelled by maya."


@pytest.mark.django_db
def test_ending_a_consent_cancels_the_invitations_that_back_it():
    invitation = VerificationSessionFactory()
    record = invitation.consent

    services.consent_revoke(record=record, actor=None, channel="email", reason="Changed my mind.")

    invitation.refresh_from_db()
    assert invitation.status == VerificationSession.Status.CANCELLED


@pytest.mark.django_db
def test_a_person_whose_consent_is_only_a_draft_is_not_invited():
    draft = ConsentRecordFactory()

    with pytest.raises(invitations.VerificationRefused, match="not in force"):
        invitations.invitation_create(person=draft.person, consent=draft, created_by=None)
    assert not VerificationSession.objects.exists()
