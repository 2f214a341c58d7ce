"""Producers told when references they copied are withdrawn; the ledger and notices in the admin."""

from __future__ import annotations

from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core import mail
from django.test import Client
from django.urls import reverse

from assets.models import ProducerNotice, ReferenceCopy
from assets.services import notices as notice_services
from audit.models import AuditEvent
from mail import services as mail_services
from mail import tasks as mail_tasks
from mail.models import OutboundEmail
from tests.factories import (
    AssetGroupFactory,
    OutboundEmailFactory,
    PersonFactory,
    ProducerNoticeFactory,
    ReferenceCopyFactory,
    UsableAssetFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

REASON = "Ada revoked her consent on 2026-05-01."


@pytest.fixture
def sent_later(queued) -> list[int]:
    """The ids of the emails whose send task is enqueued (after commit), as they come."""
    return queued.ids_of(mail_services.SEND_TASK)


def _asset(display_name: str, **kwargs: Any):
    person = PersonFactory(display_name=display_name, legal_name=f"{display_name} Legalname")
    return UsableAssetFactory(group=AssetGroupFactory(person=person), **kwargs)


def test_each_producer_gets_one_notice_and_one_email_listing_their_copies(
    sent_later, django_capture_on_commit_callbacks
):
    ada = _asset("Ada")
    ada_video = UsableAssetFactory(group=ada.group, consent=ada.consent, kind="video")
    grace = _asset("Grace")
    untouched = _asset("Linus")
    maya, sam = UserFactory(username="maya"), UserFactory(username="sam")
    ReferenceCopyFactory(user=maya, asset=ada)
    ReferenceCopyFactory(user=maya, asset=ada, kind="content_item")  # same asset and project
    ReferenceCopyFactory(user=maya, asset=ada_video, project="Autumn trailer")
    ReferenceCopyFactory(user=sam, asset=ada)
    ReferenceCopyFactory(user=sam, asset=untouched)

    with django_capture_on_commit_callbacks(execute=True):
        notices = notice_services.reference_copies_notify_withdrawn(
            asset_ids=[ada.pk, ada_video.pk, grace.pk], reason=REASON
        )

    assert sorted(notice.user.username for notice in notices) == ["maya", "sam"]
    maya_notice = ProducerNotice.objects.get(user=maya)
    assert maya_notice.reason == REASON
    assert maya_notice.lines() == [
        {
            "person": "Ada",
            "kind": "Image",
            "reference": ada.asset_uri,
            "project": "Spring campaign 2027",
        },
        {
            "person": "Ada",
            "kind": "Video",
            "reference": ada_video.asset_uri,
            "project": "Autumn trailer",
        },
    ]
    assert sorted(sent_later) == sorted(OutboundEmail.objects.values_list("pk", flat=True))
    email = OutboundEmail.objects.about(maya_notice).get()
    assert (email.to, email.status, email.subject) == (
        "maya@studio.test",
        "queued",
        "Stop using 2 likeness references you copied",
    )
    for text in (
        REASON,
        "Ada (image): " + ada.asset_uri,
        "copied for Autumn trailer",
        "/references/",
    ):
        assert text in email.body_text
    assert "Legalname" not in email.body_text
    sam_lines = ProducerNotice.objects.get(user=sam).lines()
    assert [line["reference"] for line in sam_lines] == [ada.asset_uri]  # not Linus's
    events = AuditEvent.objects.filter(action="producer_notice.created")
    assert events.count() == 2


def test_emails_are_sent_by_the_task_with_the_list(sent_later, django_capture_on_commit_callbacks):
    asset = _asset("Ada")
    ReferenceCopyFactory(asset=asset, user=UserFactory(username="maya"))
    with django_capture_on_commit_callbacks(execute=True):
        notice_services.reference_copies_notify_withdrawn(asset_ids=[asset.pk], reason=REASON)

    mail_tasks.send_email.apply(args=[sent_later[0]]).get()

    assert OutboundEmail.objects.get(pk=sent_later[0]).status == "sent"
    [message] = mail.outbox
    assert message.to == ["maya@studio.test"]
    assert message.subject == "Stop using 1 likeness reference you copied"
    assert f"- Ada (image): {asset.asset_uri}, copied for Spring campaign 2027" in message.body
    assert REASON in message.body
    email = OutboundEmail.objects.get()
    assert email.sent_at is not None
    assert AuditEvent.objects.filter(action="email.sent", object_id=str(email.pk)).exists()
    # Sent once only, however often the task runs.
    assert mail_services.email_send(email_id=email.pk).status == "sent"
    assert len(mail.outbox) == 1


def test_a_failing_email_is_retried_then_given_up(settings, sent_later):
    settings.EMAIL_BACKEND = "tests.assets.test_references_notices.BrokenBackend"
    notice = ProducerNoticeFactory(user=UserFactory(username="maya"))
    email = OutboundEmailFactory(about=notice, person_id=None, to="maya@studio.test")

    for attempt in range(1, mail_services.MAX_ATTEMPTS + 1):
        with time_machine.travel(email.next_attempt_at, tick=False):
            email = mail_services.email_send(email_id=email.pk)
        assert email.attempts == attempt
    assert email.status == "failed"
    assert email.last_error == "ConnectionRefusedError: SMTP server down"
    assert AuditEvent.objects.filter(action="email.failed").count() == 1


class BrokenBackend:
    def __init__(self, **kwargs: Any) -> None:
        pass

    def send_messages(self, messages: Any) -> int:
        raise ConnectionRefusedError("SMTP server down")


def test_calling_again_tells_no_one_twice(sent_later, django_capture_on_commit_callbacks):
    asset = _asset("Ada")
    ReferenceCopyFactory(asset=asset)
    with django_capture_on_commit_callbacks(execute=True):
        first = notice_services.reference_copies_notify_withdrawn(
            asset_ids=[asset.pk], reason=REASON
        )
    with django_capture_on_commit_callbacks(execute=True):
        again = notice_services.reference_copies_notify_withdrawn(
            asset_ids=[asset.pk], reason=REASON
        )

    assert len(first) == 1
    assert again == []
    assert ProducerNotice.objects.count() == 1
    assert len(sent_later) == 1


def test_a_producer_without_an_address_gets_the_notice_only(sent_later):
    asset = _asset("Ada")
    ReferenceCopyFactory(asset=asset, user=UserFactory(username="noaddress", email=""))

    [notice] = notice_services.reference_copies_notify_withdrawn(
        asset_ids=[asset.pk], reason=REASON
    )

    assert not OutboundEmail.objects.about(notice).exists()


def test_assets_nobody_copied_tell_nobody(sent_later):
    asset = _asset("Ada")

    assert (
        notice_services.reference_copies_notify_withdrawn(asset_ids=[asset.pk], reason=REASON) == []
    )
    assert not ProducerNotice.objects.exists()


# --- The notice on the producer's pages until acknowledged -----------------------------------


def _producer_client(client: Client, username: str = "maya") -> tuple[Client, Any]:
    user = UserFactory(username=username)
    user.user_permissions.add(Permission.objects.get(codename="view_references"))
    client.force_login(user)
    return client, user


def test_notice_shows_on_the_references_page_and_admin_until_acknowledged(client: Client):
    client, maya = _producer_client(client)
    # A producer who also works in the admin (one with nothing there is sent to /references/).
    maya.user_permissions.add(Permission.objects.get(codename="view_person"))
    asset = _asset("Ada")
    notice = ProducerNoticeFactory(
        user=maya, reason=REASON, copies=[ReferenceCopyFactory(user=maya, asset=asset)]
    )
    ProducerNoticeFactory()  # someone else's

    page = client.get("/references/").content.decode()
    admin_page = client.get("/admin/").content.decode()

    assert REASON in page
    assert f"Ada (image): <code>{asset.asset_uri}</code>, copied for Spring campaign 2027" in page
    assert page.count('class="ref-notice"') == 1
    assert "References you copied may no longer be used." in admin_page
    assert "producer-notice-banner" not in page  # the page lists them in full instead

    response = client.post(reverse("references:acknowledge", args=[notice.pk]))

    assert response.status_code == 302
    notice.refresh_from_db()
    assert notice.acknowledged_at is not None
    assert REASON not in client.get("/references/").content.decode()
    assert "producer-notice-banner" not in client.get("/admin/").content.decode()
    event = AuditEvent.objects.get(action="producer_notice.acknowledged")
    assert event.actor_id == maya.pk


def test_a_producer_cannot_acknowledge_someone_elses_notice(client: Client):
    client, _ = _producer_client(client)
    other = ProducerNoticeFactory()

    assert client.post(reverse("references:acknowledge", args=[other.pk])).status_code == 404
    other.refresh_from_db()
    assert other.acknowledged_at is None


# --- Legal: where a likeness went ------------------------------------------------------------

LOGS = ["referencecopy", "producernotice"]


def _log_row(model: str) -> int:
    notice = ProducerNoticeFactory()
    return {"referencecopy": notice.copies.get().pk, "producernotice": notice.pk}[model]


@pytest.mark.parametrize("model", LOGS)
def test_logs_are_read_only_in_the_admin(model, superuser_client: Client):
    pk = _log_row(model)
    changelist = reverse(f"admin:assets_{model}_changelist")

    assert superuser_client.get(changelist).status_code == 200
    assert superuser_client.get(changelist + "?q=a").status_code == 200
    change = superuser_client.get(reverse(f"admin:assets_{model}_change", args=[pk]))
    assert change.status_code == 200
    assert 'name="_save"' not in change.content.decode()
    assert superuser_client.get(reverse(f"admin:assets_{model}_add")).status_code == 403
    assert (
        superuser_client.get(reverse(f"admin:assets_{model}_delete", args=[pk])).status_code == 403
    )


@pytest.mark.parametrize("model", LOGS)
def test_staff_without_permission_cannot_read_the_logs(model, staff_client: Client):
    pk = _log_row(model)

    assert staff_client.get(reverse(f"admin:assets_{model}_changelist")).status_code == 403
    assert staff_client.get(reverse(f"admin:assets_{model}_change", args=[pk])).status_code == 403


def test_ledger_lists_copies_by_asset_person_user_and_project(superuser_client: Client):
    ada, grace = _asset("Ada"), _asset("Grace")
    maya = UserFactory(username="maya")
    mine = ReferenceCopyFactory(asset=ada, user=maya)
    ReferenceCopyFactory(asset=grace)
    url = reverse("admin:assets_referencecopy_changelist")

    def shown(query: dict[str, Any]) -> list[int]:
        response = superuser_client.get(url, query)
        assert response.status_code == 200
        return [copy.pk for copy in response.context["cl"].result_list]

    assert shown({"asset__id__exact": ada.pk}) == [mine.pk]
    assert shown({"asset__group__person__id__exact": ada.group.person_id}) == [mine.pk]
    assert shown({"user__id__exact": maya.pk}) == [mine.pk]
    assert len(shown({"project": "Spring campaign 2027"})) == 2
    assert shown({"q": "Ada Legalname"}) == [mine.pk]


def test_asset_page_lists_its_reference_copies(superuser_client: Client):
    copy = ReferenceCopyFactory(project="Spring campaign 2027", user=UserFactory(username="maya"))

    page = superuser_client.get(reverse("admin:assets_asset_change", args=[copy.asset_id]))

    content = page.content.decode()
    assert "Reference copies" in content
    assert "maya" in content
    assert copy.request_id in content


def test_ledger_rows_cannot_be_changed_through_the_admin(superuser_client: Client):
    copy = ReferenceCopyFactory()
    url = reverse("admin:assets_referencecopy_change", args=[copy.pk])

    response = superuser_client.post(url, {"project": "Something else"})

    assert response.status_code == 403
    assert ReferenceCopy.objects.get(pk=copy.pk).project == copy.project
