"""What every user sees around the work: the favicon, no dead "View site" link, producers sent to
their references page, the studio and the inviter named in invitations, times with seconds and
time zone, columns in users' words."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.test import Client

from assets.models import Withdrawal
from audit.services import audit_record
from consent import services as consent_services
from mail.models import OutboundEmail
from tests.factories import ConsentRecordFactory, PersonFactory, UsableAssetFactory, UserFactory
from verification.services import invitations

pytestmark = pytest.mark.django_db


def test_the_favicon_is_served(client: Client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file


def test_admin_pages_link_the_icon_and_no_view_site(superuser_client: Client):
    page = superuser_client.get("/admin/").content.decode()
    assert 'rel="icon"' in page
    assert "View site" not in page
    assert superuser_client.get("/")["Location"] == "/admin/"


def _producer_client() -> Client:
    producer = UserFactory(username="producer")
    producer.user_permissions.add(Permission.objects.get(codename="view_references"))
    client = Client()
    client.force_login(producer)
    return client


def test_a_producer_lands_on_the_references_page():
    client = _producer_client()
    assert client.get("/admin/")["Location"] == "/references/"
    assert "You don" not in client.get("/admin/", follow=True).content.decode()


def test_a_producer_signing_in_arrives_at_the_references_page(client: Client):
    producer = UserFactory(username="producer2")
    producer.user_permissions.add(Permission.objects.get(codename="view_references"))
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "producer2", "password": "correct horse battery staple"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/references/"


def test_staff_with_admin_work_still_get_the_admin_home(superuser_client: Client):
    assert superuser_client.get("/admin/").status_code == 200


@pytest.mark.parametrize(
    ("first", "last", "who"),
    [("Maya", "Lind", "Maya Lind at Northlight Studios"), ("", "", "Northlight Studios")],
)
def test_the_invitation_names_the_inviter_by_full_name_or_only_the_studio(
    queued, settings, first, last, who
):
    settings.PORTAL_ORGANISATION_NAME = "Northlight Studios"
    staff = UserFactory(username="onboarding", first_name=first, last_name=last)
    person = PersonFactory(email="ada@talent.test")
    invitation = invitations.invitation_create(
        person=person,
        consent=ConsentRecordFactory(person=person, approved=True),
        created_by=staff,
    )

    email = OutboundEmail.objects.get(kind="invitation")
    assert f"{who} invites you" in email.body_text
    page = Client().get(f"/verify/{invitation.invitation_token}/").content.decode()
    assert f"{who} invites you" in page
    assert "onboarding at" not in email.body_text + page


def test_evidence_and_withdrawal_times_have_seconds_and_time_zone(superuser_client, settings):
    settings.TIME_ZONE = "Europe/London"
    person = PersonFactory()
    at = datetime.datetime(2026, 12, 1, 9, 30, 15, tzinfo=datetime.UTC)
    with time_machine.travel(at, tick=False):
        audit_record(action="person.created", obj=person, actor=None)
    page = superuser_client.get("/admin/audit/auditevent/").content.decode()
    assert "2026-12-01 09:30:15 GMT" in page
    asset = UsableAssetFactory()
    with time_machine.travel(at, tick=False):
        consent_services.consent_revoke(
            record=asset.consent, actor=UserFactory(), channel="email", reason="By email."
        )
    withdrawal = Withdrawal.objects.get(consent=asset.consent)
    page = superuser_client.get(f"/admin/assets/withdrawal/{withdrawal.pk}/change/").content
    assert "2026-12-01 09:30:15 GMT" in page.decode()


def test_audit_and_withdrawal_columns_are_in_users_words(superuser_client: Client):
    audit_record(action="person.created", obj=PersonFactory(), actor=None)
    page = superuser_client.get("/admin/audit/auditevent/").content.decode()
    for developer_word in ("Actor label", "Object repr", "Occurred at"):
        assert developer_word not in page
    assert "column-by" in page and "column-about" in page
    withdrawals = superuser_client.get("/admin/assets/withdrawal/").content.decode()
    assert "Requested by label" not in withdrawals
