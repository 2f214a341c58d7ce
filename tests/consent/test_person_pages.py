"""The person's own page (/me/): the link by email, what the page shows, withdrawing online."""

from __future__ import annotations

import datetime
import hashlib
import io
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from assets import tasks as asset_tasks
from assets.models import ProducerNotice, Withdrawal, WithdrawalReason
from audit.models import AuditEvent
from consent import person_links, person_pages
from consent.models import ConsentRecord, PersonalLink, RevocationChannel, personal_link_issue
from consent.services import consent_warn_expiring
from mail.models import OutboundEmail
from portal.logredact import mask_file_tokens
from portal.models import ThrottleCount
from sandbox.samples import make_image
from sandbox.servers import gunicorn
from tests.celery_helpers import database_url
from tests.factories import (
    ConsentRecordFactory,
    PersonFactory,
    ReferenceCopyFactory,
    UsableAssetFactory,
    UserFactory,
)
from verification.services import invitations

pytestmark = pytest.mark.django_db

LINK = re.compile(r"https?://\S+/me/[A-Za-z0-9_-]+/")


def link_in(email: OutboundEmail) -> str:
    found = LINK.search(email.body_text)
    assert found is not None, email.body_text
    assert found.group(0) in email.body_html
    return found.group(0)


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def ask_for_link(client: Client, address: str, **extra) -> str:
    response = client.post(reverse("me:request"), {"email": address}, **extra)
    assert response.status_code == 200
    return response.content.decode()


# --- The link by email ---------------------------------------------------------------------------


def test_asking_for_a_link_emails_one_that_opens_the_persons_page(client: Client, queued):
    person = PersonFactory(display_name="Ada", email="ada@example.test")

    page = ask_for_link(client, "ADA@example.test ")

    assert "Check your inbox" in page
    (email,) = OutboundEmail.objects.filter(kind="personal_link")
    assert email.to == "ada@example.test" and email.person_id == person.pk
    link = link_in(email)
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert not PersonalLink.objects.filter(token_sha256__contains=token).exists()  # hashed only
    response = client.get(path_of(link))
    assert response.status_code == 200
    assert "Hello Ada" in response.content.decode()
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert "no-store" in response["Cache-Control"]
    actions = set(AuditEvent.objects.filter(person_id=person.pk).values_list("action", flat=True))
    assert {"personal_link.sent", "personal_link.used"} <= actions


def test_an_unknown_address_gets_the_same_answer_and_no_email(client: Client, queued):
    PersonFactory(email="ada@example.test")

    known = ask_for_link(client, "ada@example.test")
    unknown = ask_for_link(client, "nobody@example.test")

    assert known == unknown
    assert OutboundEmail.objects.filter(kind="personal_link").count() == 1


def test_link_requests_are_limited_per_address_and_per_client(client: Client, queued):
    PersonFactory(email="ada@example.test")

    answers = {ask_for_link(client, "ada@example.test") for _ in range(5)}

    assert len(answers) == 1  # past the address's limit the answer does not change
    assert OutboundEmail.objects.filter(kind="personal_link").count() == 3
    for number in range(5):  # other addresses, same client: 10 requests in all
        ask_for_link(client, f"someone{number}@example.test")
    refused = client.post(reverse("me:request"), {"email": "new@example.test"})
    assert refused.status_code == 429
    other_client = client.post(
        reverse("me:request"), {"email": "new@example.test"}, REMOTE_ADDR="10.0.0.9"
    )
    assert other_client.status_code == 200


def test_past_the_address_limit_a_known_address_is_answered_like_an_unknown_one(
    client: Client, queued
):
    PersonFactory(email="ada@example.test")
    for _ in range(person_pages.EMAILS_PER_ADDRESS):
        ask_for_link(client, "ada@example.test")

    past_the_limit = ask_for_link(client, "Ada@example.test")
    unknown = ask_for_link(client, "nobody@example.test")

    assert past_the_limit == unknown
    assert OutboundEmail.objects.filter(kind="personal_link").count() == 3
    # The counts hold no address, not even one a list of addresses could be hashed to match.
    keys = " ".join(ThrottleCount.objects.values_list("key", flat=True))
    for address in ("ada@example.test", "nobody@example.test"):
        assert address not in keys and hashlib.sha256(address.encode()).hexdigest() not in keys


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_link_limits_hold_across_two_gunicorn_workers(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the workers share the test's PostgreSQL database")
    PersonFactory(email="ada@example.test")
    env = {
        "DEBUG": "true",
        "PORTAL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": "filesystem://",  # the emails' tasks stay in tmp_path
        "TRUSTED_PROXY_COUNT": "1",  # so that the requests come from many client addresses
    }
    with gunicorn(env, workers=2, threads=4) as base_url:
        browser = requests.Session()
        form = browser.get(f"{base_url}/me/", timeout=30).text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert csrf is not None

        def ask(email: str, client_address: str) -> tuple[int, str]:
            response = browser.post(
                f"{base_url}/me/",
                data={"email": email, "csrfmiddlewaretoken": csrf.group(1)},
                headers={"X-Forwarded-For": client_address},
                timeout=30,
            )
            return response.status_code, response.text

        with ThreadPoolExecutor(16) as pool:
            # One address asked for from 12 client addresses, then one client asking 30 times.
            known = list(pool.map(lambda n: ask("ada@example.test", f"198.51.100.{n}"), range(12)))
            flood = list(
                pool.map(lambda n: ask(f"someone{n}@example.test", "203.0.113.9"), range(30))
            )
        unknown = ask("nobody@example.test", "192.0.2.1")

    assert OutboundEmail.objects.filter(kind="personal_link").count() == 3
    assert set(known) == {unknown} and unknown[0] == 200  # the same answer past the limit
    assert sorted(status for status, _ in flood) == [200] * 10 + [429] * 20


def test_the_invitation_and_the_expiry_warning_carry_the_persons_link(client: Client, queued):
    person = PersonFactory(display_name="Ada")
    consent = ConsentRecordFactory(
        person=person,
        approved=True,
        created_by=UserFactory(),
        expires_on=timezone.localdate() + datetime.timedelta(days=10),
    )
    invitations.invitation_create(person=person, consent=consent, created_by=UserFactory())
    consent_warn_expiring()

    for kind in ("invitation", "consent_expiry_warning"):
        email = OutboundEmail.objects.get(kind=kind)
        assert "Hello Ada" in client.get(path_of(link_in(email))).content.decode()
    staff = OutboundEmail.objects.get(kind="consent_expiry_warning_staff")
    assert "/me/" not in staff.body_text


# --- Links that do not open the page ------------------------------------------------------------


def test_expired_revoked_and_forged_links_get_one_neutral_page(client: Client):
    person = PersonFactory(legal_name="Ada Moreau", display_name="Ada")
    expired = path_of(personal_link_issue(person=person, sent_for="test"))
    with time_machine.travel(timezone.now() - datetime.timedelta(days=1)):
        revoked = path_of(personal_link_issue(person=person, sent_for="test"))
    person_links.personal_links_revoke(links=person.personal_links.all(), actor=UserFactory())
    later = timezone.now() + datetime.timedelta(days=31)

    pages = []
    with time_machine.travel(later):
        for path in (expired, revoked, reverse("me:page", args=["forged-token-123"])):
            response = client.get(path)
            assert response.status_code == 404
            pages.append(response.content.decode())

    assert "This link does not work" in pages[0]
    assert pages[0] == pages[1] == pages[2]
    assert "Ada" not in pages[0]


def test_a_revoked_link_stops_working_at_once(client: Client):
    person = PersonFactory()
    link = path_of(personal_link_issue(person=person, sent_for="test"))
    assert client.get(link).status_code == 200

    assert (
        person_links.personal_links_revoke(links=person.personal_links.all(), actor=UserFactory())
        == 1
    )

    assert client.get(link).status_code == 404


# --- What the page shows ------------------------------------------------------------------------


def test_the_page_shows_only_this_persons_consents_assets_and_copies(client: Client):
    mine = UsableAssetFactory(
        consent__consent_text_version="2026.7", content=make_image(width=300, height=400, fmt="PNG")
    )
    ReferenceCopyFactory(asset=mine, project="Harbour lights")
    ConsentRecordFactory(person=mine.consent.person, consent_text_version="draft-9")
    theirs = UsableAssetFactory(consent__consent_text_version="2031.3")
    ReferenceCopyFactory(asset=theirs, project="Secret project")
    producer = ReferenceCopyFactory(asset=mine).user
    token = path_of(personal_link_issue(person=mine.consent.person, sent_for="test")).split("/")[2]

    page = client.get(reverse("me:page", args=[token])).content.decode()

    assert "Consent version 2026.7" in page and "In force" in page
    assert "Harbour lights" in page and f"#{mine.pk}" in page
    assert "draft-9" not in page  # drafts were never signed
    assert "2031.3" not in page and "Secret project" not in page and f"#{theirs.pk} " not in page
    assert producer.username not in page  # the ledger names no producer
    preview = client.get(reverse("me:thumbnail", args=[token, mine.pk]))
    assert preview.status_code == 200 and preview["Content-Type"] == "image/jpeg"
    assert Image.open(io.BytesIO(preview.content)).size == (180, 240)  # a preview, not the file
    assert client.get(reverse("me:thumbnail", args=[token, theirs.pk])).status_code == 404
    their_document = reverse("me:document", args=[token, theirs.consent.pk])
    assert client.get(their_document).status_code == 404
    their_withdrawal = reverse("me:withdraw", args=[token, theirs.consent.pk])
    assert client.post(their_withdrawal, {"understood": "on"}).status_code == 404
    theirs.consent.refresh_from_db()
    assert theirs.consent.status == ConsentRecord.Status.APPROVED


def test_the_signed_document_is_served_like_every_private_file(client: Client):
    record = ConsentRecordFactory(approved=True, with_document=True)
    token = path_of(personal_link_issue(person=record.person, sent_for="test")).split("/")[2]

    response = client.get(reverse("me:document", args=[token, record.pk]))

    assert response.status_code == 200
    assert b"".join(response.streaming_content).startswith(b"%PDF")
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment")
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_the_link_token_is_masked_in_logs():
    text = "GET https://portal.test/me/AbC-12_x/consents/3/document and /me/ alone"

    assert mask_file_tokens(text) == (
        "GET https://portal.test/me/***/consents/3/document and /me/ alone"
    )


# --- Withdrawing ---------------------------------------------------------------------------------


def test_withdrawing_takes_two_steps_then_revokes_as_legals_revoke_does(
    client: Client, queued, settings, django_capture_on_commit_callbacks
):
    settings.LEGAL_NOTIFICATION_EMAIL = "legal@studio.test"
    asset = UsableAssetFactory()
    copy = ReferenceCopyFactory(asset=asset, project="Harbour lights")
    record = asset.consent
    token = path_of(personal_link_issue(person=record.person, sent_for="test")).split("/")[2]
    step = reverse("me:withdraw", args=[token, record.pk])

    page = client.get(reverse("me:page", args=[token])).content.decode()
    assert step in page  # step 1: the button on the page
    explained = client.get(step).content.decode()  # step 2: what happens, then confirm
    assert "cannot be undone" in explained and "Yes, withdraw my consent" in explained
    assert client.post(step, {}).status_code == 400  # the confirmation is required
    record.refresh_from_db()
    assert record.status == ConsentRecord.Status.APPROVED

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(step, {"understood": "on", "reason": "I changed my mind."})

    assert response.status_code == 302
    record.refresh_from_db()
    assert record.status == ConsentRecord.Status.REVOKED
    assert record.revocation_channel == RevocationChannel.ONLINE
    assert record.revoked_by is None and record.revocation_requested_at is not None
    assert record.revocation_reason == "I changed my mind."
    withdrawal = Withdrawal.objects.get(consent=record)
    assert withdrawal.reason == WithdrawalReason.REVOKED
    assert withdrawal.requested_by_label == "the person"
    assert {item.asset_id for item in withdrawal.items.all()} == {asset.pk, None}
    assert len(queued.of(asset_tasks.withdraw_item)) == 1  # the asset first, then its group
    (notify,) = queued.of(asset_tasks.notify_producers_of_withdrawal)
    asset_tasks.notify_producers_of_withdrawal.apply(args=notify)
    assert ProducerNotice.objects.get(user=copy.user).copies.get() == copy
    event = AuditEvent.objects.get(action="consent.revoke", object_id=str(record.pk))
    assert event.actor_label == "the person"
    confirmation = OutboundEmail.objects.get(kind="consent_withdrawn")
    assert confirmation.to == record.person.email
    assert "2 deletions were asked of the AI provider" in confirmation.body_text
    assert "Hello" in client.get(path_of(link_in(confirmation))).content.decode()
    legal = OutboundEmail.objects.get(kind="consent_withdrawn_legal")
    assert legal.to == "legal@studio.test" and "I changed my mind." in legal.body_text
    assert AuditEvent.objects.filter(action="consent.withdrawn_by_person").count() == 1

    after = client.get(response["Location"]).content.decode()
    assert "Withdrawn on" in after and "in progress: 0 of 2 deletions confirmed" in after
    assert step not in after  # nothing left to withdraw


def test_legal_is_told_through_the_legal_groups_addresses_by_default(client: Client, queued):
    legal = Group.objects.create(name="Legal")
    UserFactory(email="lena@studio.test").groups.add(legal)
    UserFactory(email="").groups.add(legal)
    UserFactory(email="gone@studio.test", is_active=False).groups.add(legal)
    record = ConsentRecordFactory(approved=True)
    link = PersonalLink.objects.get(
        pk=PersonalLink.objects.create(
            person=record.person,
            token_sha256="0" * 64,
            sent_for="test",
            expires_at=timezone.now() + datetime.timedelta(days=1),
        ).pk
    )

    person_links.consent_withdraw_by_person(link=link, record=record)

    emails = OutboundEmail.objects.filter(kind="consent_withdrawn_legal")
    assert list(emails.values_list("to", flat=True)) == ["lena@studio.test"]


def test_the_page_and_the_link_email_speak_the_persons_language(client: Client, queued):
    person = PersonFactory(email="mei@example.test", preferred_language="zh-Hant")
    ConsentRecordFactory(person=person, approved=True)

    ask_for_link(client, "mei@example.test")

    email = OutboundEmail.objects.get(kind="personal_link")
    assert "您的個人連結" in email.subject and "請勿轉寄" in email.body_text
    response = client.get(path_of(link_in(email)))
    assert response["Content-Language"] == "zh-hant"
    assert "撤回我的同意" in response.content.decode()
    simplified = client.get(path_of(link_in(email)) + "?lang=zh-hans").content.decode()
    assert "撤回我的同意" in simplified and "您的同意书" in simplified


def test_legal_switches_a_persons_links_off_in_the_admin(client: Client, superuser_client: Client):
    person = PersonFactory(legal_name="Ada Moreau")
    link = path_of(personal_link_issue(person=person, sent_for="invitation"))
    changelist = reverse("admin:consent_personallink_changelist")
    listing = superuser_client.get(changelist).content.decode()
    assert "Ada" in listing and "usable" in listing
    assert link.split("/")[2] not in listing  # the token is never shown (nor stored)

    response = superuser_client.post(
        changelist,
        {"action": "switch_off", "_selected_action": [person.personal_links.get().pk]},
        follow=True,
    )

    assert "1 link(s) switched off." in response.content.decode()
    assert client.get(link).status_code == 404
    event = AuditEvent.objects.get(action="personal_link.revoked")
    assert event.person_id == person.pk
