"""Staff's side of verification in the admin: invite, resend, cancel, reissue, the QR panel and
page, "Verify here now" (desk page, mint and status endpoints), timelines, the person filter."""

from __future__ import annotations

import datetime
import json
from xml.etree import ElementTree

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from assets.models import AssetGroup
from consent.models import Person
from mail import services as mail_services
from mail import tasks as mail_tasks
from mail.models import OutboundEmail
from sandbox.testing import complete_session, fail_session
from tests.factories import (
    ConsentRecordFactory,
    OutboundEmailFactory,
    PersonFactory,
    UpstreamSessionFactory,
    UserFactory,
    VerificationSessionFactory,
)
from tests.verification_helpers import use_sandbox
from verification.admin_views import DESK_AUTO_MINTS, VerificationState
from verification.models import UpstreamSession, VerificationSession
from verification.services import invitations, sessions

pytestmark = pytest.mark.django_db

Status = VerificationSession.Status


@pytest.fixture(autouse=True)
def no_broker(queued):
    """Tasks are recorded (``queued``), never sent to a broker; tests run the services."""
    return queued


def _send_queued_emails(queued) -> None:
    for (email_id,) in queued.of(mail_tasks.send_email):
        mail_services.email_send(email_id=email_id)


_APPS = {
    "person": "consent",
    "verificationsession": "verification",
    "upstreamsession": "verification",
    "outboundemail": "mail",
}


def _url(name: str, *args: object) -> str:
    app = next(app for prefix, app in _APPS.items() if name.startswith(prefix))
    return reverse(f"admin:{app}_{name}", args=args)


def _messages(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _staff(*codenames: str) -> Client:
    """A logged-in staff member holding exactly these permissions (of people and invitations)."""
    user = UserFactory()
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=("consent", "verification"), codename__in=codenames
        )
    )
    client = Client()
    client.force_login(user)
    return client


def _invite_action(client: Client, *people: Person):
    return client.post(
        _url("person_changelist"),
        {"action": "invite_to_verify", "_selected_action": [person.pk for person in people]},
    )


def _invitation_action(client: Client, action: str, *invitations: VerificationSession):
    return client.post(
        _url("verificationsession_changelist"),
        {"action": action, "_selected_action": [invitation.pk for invitation in invitations]},
    )


# --- Invite -----------------------------------------------------------------------------------


def test_invite_action_invites_emails_and_goes_to_the_qr_page(
    superuser_client: Client, django_capture_on_commit_callbacks, queued
):
    consent = ConsentRecordFactory(approved=True, person__email="ada@talent.test")
    person = consent.person

    with django_capture_on_commit_callbacks(execute=True):
        response = _invite_action(superuser_client, person)
    _send_queued_emails(queued)

    invitation = VerificationSession.objects.get(person=person)
    assert (invitation.status, invitation.consent) == (Status.INVITED, consent)
    assert response.status_code == 302
    assert response["Location"] == _url("verificationsession_qr", invitation.pk)
    [message] = _messages(response)
    assert f"Invited {person}: the invitation email to ada@talent.test is on its way." in message
    assert f'href="{_url("verificationsession_qr", invitation.pk)}"' in message
    assert OutboundEmail.objects.about(invitation).get().status == "sent"
    assert [m.to for m in mail.outbox] == [["ada@talent.test"]]
    assert invitations.invitation_url(invitation) in mail.outbox[0].body


def _consenting(**person) -> Person:
    """A person with an approved consent in force, whom verification may be asked of."""
    return ConsentRecordFactory(
        approved=True, **{f"person__{k}": v for k, v in person.items()}
    ).person


def test_an_invitation_backs_the_consent_in_force_and_nobody_is_invited_without_one(
    superuser_client: Client,
):
    approved = ConsentRecordFactory(approved=True)
    ConsentRecordFactory(person=approved.person)  # a later draft
    draft = ConsentRecordFactory(person__email="")
    revoked = ConsentRecordFactory(revoked=True, person__email="").person
    nobody = PersonFactory()

    response = _invite_action(superuser_client, approved.person, draft.person, revoked, nobody)

    backed = dict(VerificationSession.objects.values_list("person", "consent"))
    assert backed == {approved.person.pk: approved.pk}
    refusals = [m for m in _messages(response) if "no approved consent in force" in m]
    assert len(refusals) == 3  # verification collects biometric data: consent comes first


def test_invite_action_is_labelled_invite_to_verify(superuser_client: Client):
    PersonFactory()

    page = superuser_client.get(_url("person_changelist")).content.decode()

    assert '<option value="invite_to_verify">Invite to verify</option>' in page


def test_inviting_a_person_without_email_offers_the_qr_page_and_code(superuser_client: Client):
    person = _consenting(email="")

    response = _invite_action(superuser_client, person)

    invitation = VerificationSession.objects.get(person=person)
    [message] = _messages(response)
    assert "who has no email address: show them the" in message
    assert invitation.display_code in message
    assert not OutboundEmail.objects.exists()
    assert response["Location"] == _url("verificationsession_qr", invitation.pk)


def test_invite_action_on_several_people_reports_each_and_refuses_a_second_open_invitation(
    superuser_client: Client,
):
    waiting = VerificationSessionFactory().person
    fresh = _consenting()

    response = _invite_action(superuser_client, waiting, fresh)

    assert response.status_code == 302
    assert response["Location"].endswith(_url("person_changelist"))
    refused, invited = sorted(_messages(response), key=lambda m: not m.startswith(str(waiting)))
    assert refused.startswith(f"{waiting}: {waiting} already has an open invitation")
    assert "resend, cancel or reissue it instead" in refused
    assert invited.startswith(f"Invited {fresh}")
    assert VerificationSession.objects.filter(person=waiting).count() == 1
    assert VerificationSession.objects.filter(person=fresh).count() == 1


def test_invite_button_invites_and_goes_to_the_qr_page(superuser_client: Client):
    person = _consenting(email="")

    response = superuser_client.post(_url("person_invite", person.pk))

    invitation = VerificationSession.objects.get(person=person)
    assert response["Location"] == _url("verificationsession_qr", invitation.pk)


def test_invite_button_refuses_a_second_open_invitation_back_on_the_person_page(
    superuser_client: Client,
):
    person = VerificationSessionFactory().person

    response = superuser_client.post(_url("person_invite", person.pk))

    assert response["Location"] == _url("person_change", person.pk)
    assert "already has an open invitation" in _messages(response)[0]
    assert VerificationSession.objects.filter(person=person).count() == 1


def test_invite_button_answers_get_with_405(superuser_client: Client):
    person = PersonFactory()

    assert superuser_client.get(_url("person_invite", person.pk)).status_code == 405
    assert not VerificationSession.objects.exists()


def test_person_page_shows_the_invite_button_or_the_open_invitations_qr_page(
    superuser_client: Client,
):
    person = _consenting()

    page = superuser_client.get(_url("person_change", person.pk)).content.decode()
    assert f'action="{_url("person_invite", person.pk)}"' in page
    assert ">Invite to verify</button>" in page

    invitation = VerificationSessionFactory(person=person)
    page = superuser_client.get(_url("person_change", person.pk)).content.decode()
    assert "Invite to verify</button>" not in page
    assert f'href="{_url("verificationsession_qr", invitation.pk)}"' in page


def test_inviting_needs_the_permission_to_add_invitations():
    person = _consenting()
    client = _staff("view_person", "change_person", "view_verificationsession")

    page = client.get(_url("person_changelist")).content.decode()
    assert "invite_to_verify" not in page
    assert "Invite to verify" not in client.get(_url("person_change", person.pk)).content.decode()
    assert client.post(_url("person_invite", person.pk)).status_code == 403
    response = _invite_action(client, person)  # an action the user is not offered
    assert response.status_code == 200
    assert not VerificationSession.objects.exists()

    allowed = _staff("view_person", "add_verificationsession")
    assert allowed.post(_url("person_invite", person.pk)).status_code == 302
    assert VerificationSession.objects.filter(person=person).exists()


# --- Resend, cancel, reissue ------------------------------------------------------------------


def test_resend_action_emails_the_invitation_again(
    superuser_client: Client, django_capture_on_commit_callbacks, queued
):
    invitation = VerificationSessionFactory(person__email="grace@talent.test")

    with django_capture_on_commit_callbacks(execute=True):
        response = _invitation_action(superuser_client, "resend_invitations", invitation)
    _send_queued_emails(queued)

    assert _messages(response) == [
        f"Sent {invitation.person}'s invitation again, to grace@talent.test."
    ]
    assert [m.to for m in mail.outbox] == [["grace@talent.test"]]
    assert invitation.emails.get().status == "sent"


def test_resend_button_refuses_an_ended_invitation_with_the_reason(superuser_client: Client):
    invitation = VerificationSessionFactory(status=Status.CANCELLED)

    response = superuser_client.post(_url("verificationsession_resend", invitation.pk))

    assert response["Location"] == _url("verificationsession_change", invitation.pk)
    assert _messages(response) == [
        f"{invitation.person}: This invitation is cancelled: it cannot be sent."
    ]
    assert not OutboundEmail.objects.exists()


def test_cancel_action_ends_open_invitations_and_refuses_ended_ones(
    superuser_client: Client, superuser
):
    open_one = VerificationSessionFactory()
    verified = VerificationSessionFactory(verified=True)

    response = _invitation_action(superuser_client, "cancel_invitations", open_one, verified)

    open_one.refresh_from_db()
    verified.refresh_from_db()
    assert (open_one.status, open_one.ended_by) == (Status.CANCELLED, superuser)
    assert verified.status == Status.VERIFIED
    assert sorted(_messages(response)) == sorted(
        [
            f"Cancelled {open_one.person}'s invitation: its link and code no longer work.",
            f"{verified.person}: This invitation is already verified.",
        ]
    )


def test_cancel_button_cancels_and_returns_to_the_invitation(superuser_client: Client):
    invitation = VerificationSessionFactory()

    response = superuser_client.post(_url("verificationsession_cancel", invitation.pk))

    assert response["Location"] == _url("verificationsession_change", invitation.pk)
    invitation.refresh_from_db()
    assert invitation.status == Status.CANCELLED


def test_reissue_action_replaces_the_invitation_with_a_new_link_and_code(
    superuser_client: Client,
):
    old = VerificationSessionFactory(person__email="")

    response = _invitation_action(superuser_client, "reissue_invitations", old)

    old.refresh_from_db()
    new = old.replaced_by
    assert new is not None and new.is_open and old.status == Status.CANCELLED
    assert (new.code, new.invitation_token) != (old.code, old.invitation_token)
    [message] = _messages(response)
    assert message.startswith(f"Reissued {old.person}'s invitation")
    assert f'href="{_url("verificationsession_qr", new.pk)}"' in message


def test_reissue_button_goes_to_the_new_invitation(superuser_client: Client):
    old = VerificationSessionFactory(status=Status.EXPIRED, person__email="")

    response = superuser_client.post(_url("verificationsession_reissue", old.pk))

    old.refresh_from_db()
    assert response["Location"] == _url("verificationsession_change", old.replaced_by.pk)


def test_operations_need_the_change_permission_and_reissue_also_add():
    invitation = VerificationSessionFactory()
    viewer = _staff("view_verificationsession")
    changer = _staff("view_verificationsession", "change_verificationsession")

    for name in ("resend", "cancel", "reissue"):
        assert viewer.post(_url(f"verificationsession_{name}", invitation.pk)).status_code == 403
    assert changer.post(_url("verificationsession_reissue", invitation.pk)).status_code == 403
    page = changer.get(_url("verificationsession_changelist")).content.decode()
    assert "cancel_invitations" in page and "reissue_invitations" not in page
    page = viewer.get(_url("verificationsession_changelist")).content.decode()
    assert "cancel_invitations" not in page
    invitation.refresh_from_db()
    assert invitation.status == Status.INVITED and invitation.replaced_by is None


def test_operations_answer_get_with_405(superuser_client: Client):
    invitation = VerificationSessionFactory()

    for name in ("resend", "cancel", "reissue", "desk_mint"):
        response = superuser_client.get(_url(f"verificationsession_{name}", invitation.pk))
        assert response.status_code == 405, name


def test_invitations_are_not_added_by_hand(superuser_client: Client):
    assert superuser_client.get(_url("verificationsession_add")).status_code == 403


# --- The invitation page and the QR page ------------------------------------------------------


def _svg_in(page: str) -> ElementTree.Element:
    start = page.index('<svg version="1.1"')
    end = page.index("</svg>", start) + len("</svg>")
    return ElementTree.fromstring(page[start:end])  # noqa: S314 (the portal's own output)


def test_invitation_page_shows_its_qr_code_link_and_code_and_buttons(superuser_client: Client):
    invitation = VerificationSessionFactory()

    page = superuser_client.get(_url("verificationsession_change", invitation.pk)).content.decode()

    link = invitations.invitation_url(invitation)
    assert _svg_in(page).get("class") == "qr-code"
    assert f'<code class="invitation-link">{link}</code>' in page
    assert invitation.display_code in page
    assert f'href="{_url("verificationsession_desk", invitation.pk)}">Verify here now</a>' in page
    for name in ("resend", "cancel", "reissue"):
        assert f'action="{_url(f"verificationsession_{name}", invitation.pk)}"' in page


def test_invitation_link_and_code_are_hidden_from_staff_who_may_only_view():
    invitation = VerificationSessionFactory()
    viewer = _staff("view_verificationsession")

    response = viewer.get(_url("verificationsession_change", invitation.pk))

    page = response.content.decode()
    assert response.status_code == 200
    assert invitation.invitation_token not in page
    assert 'class="typed-code"' not in page
    assert 'class="qr-code"' not in page and "Verify here now" not in page
    assert viewer.get(_url("verificationsession_qr", invitation.pk)).status_code == 403
    assert viewer.get(_url("verificationsession_desk", invitation.pk)).status_code == 403


def test_an_ended_invitation_shows_no_qr_code_and_offers_reissue(superuser_client: Client):
    invitation = VerificationSessionFactory(status=Status.EXPIRED)

    page = superuser_client.get(_url("verificationsession_change", invitation.pk)).content.decode()

    assert 'class="qr-code"' not in page
    assert "This invitation is expired: its link and code no longer work." in page
    assert _url("verificationsession_reissue", invitation.pk) in page
    assert _url("verificationsession_cancel", invitation.pk) not in page


def test_qr_page_shows_the_invitation_link_as_qr_code_text_and_typed_code(
    superuser_client: Client,
):
    invitation = VerificationSessionFactory()

    response = superuser_client.get(_url("verificationsession_qr", invitation.pk))

    page = response.content.decode()
    assert response.status_code == 200
    assert _svg_in(page).get("aria-label") == f"QR code of {invitation.person}'s invitation link"
    assert invitations.invitation_url(invitation) in page
    assert f'<dd class="typed-code">{invitation.display_code}</dd>' in page
    assert invitations.code_entry_url() in page


# --- The timeline -----------------------------------------------------------------------------


def test_invitation_and_person_pages_show_the_timeline_with_the_upstreams_words(
    superuser_client: Client,
):
    invitation = VerificationSessionFactory()
    OutboundEmailFactory(about=invitation, status="sent", sent_at=timezone.now())
    UpstreamSessionFactory(
        invitation=invitation,
        status=UpstreamSession.Status.EXPIRED,
        last_error_code="InvalidParameter.BytedToken",
        last_error="BytedToken has expired.",
        last_error_explanation="The person did not finish before the token expired.",
        ended_at=timezone.now(),
    )

    for url in (
        _url("verificationsession_change", invitation.pk),
        _url("person_change", invitation.person.pk),
    ):
        page = superuser_client.get(url).content.decode()
        for text in (
            ">Invited</span>",
            ">Email sent</span>",
            ">Upstream session created</span>",
            ">Expired</span>",
            "InvalidParameter.BytedToken BytedToken has expired.",
            "The person did not finish before the token expired.",
        ):
            assert text in page, (url, text)


def test_upstream_sessions_show_a_shortened_bytedtoken_only(superuser_client: Client):
    row = UpstreamSessionFactory(
        callback_params={"bytedToken": "placeholder", "resultCode": "10001"},
        callback_received_at=timezone.now(),
    )
    row.callback_params["bytedToken"] = row.byted_token
    row.save()

    for url in (
        _url("verificationsession_change", row.invitation.pk),
        _url("upstreamsession_change", row.pk),
        _url("upstreamsession_changelist"),
    ):
        page = superuser_client.get(url).content.decode()
        assert row.byted_token not in page, url
        assert f"…{row.byted_token[-6:]}" in page, url
    page = superuser_client.get(_url("upstreamsession_change", row.pk)).content.decode()
    assert "resultCode=10001" in page
    assert row.api_key_fingerprint in page


def test_upstream_sessions_and_emails_are_read_only(superuser_client: Client):
    row = UpstreamSessionFactory()
    email = OutboundEmailFactory()

    assert superuser_client.get(_url("upstreamsession_add")).status_code == 403
    assert superuser_client.get(_url("outboundemail_add")).status_code == 403
    for url in (
        _url("upstreamsession_change", row.pk),
        _url("outboundemail_change", email.pk),
    ):
        page = superuser_client.get(url).content.decode()
        assert 'name="_save"' not in page


# --- The person list's verification filter ----------------------------------------------------


@pytest.fixture
def people_in_every_state() -> dict[str, Person]:
    now = timezone.now()
    people = {
        VerificationState.NEVER: PersonFactory(),
        VerificationState.WAITING: VerificationSessionFactory().person,
        VerificationState.VERIFIED: VerificationSessionFactory(verified=True).person,
        VerificationState.FAILED: VerificationSessionFactory(status=Status.FAILED).person,
        VerificationState.EXPIRED: VerificationSessionFactory(status=Status.EXPIRED).person,
        VerificationState.CANCELLED: VerificationSessionFactory(status=Status.CANCELLED).person,
    }
    # Open, but past its lifetime (beat has not ended it yet): expired.
    overdue = VerificationSessionFactory(expires_at=now - datetime.timedelta(minutes=1))
    # An earlier failure does not count once the person was invited again.
    again = VerificationSessionFactory(status=Status.FAILED)
    VerificationSessionFactory(person=again.person)
    return {**people, "overdue": overdue.person, "again": again.person}


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("never", {"never"}),
        ("waiting", {"waiting", "again"}),
        ("verified", {"verified"}),
        ("failed", {"failed"}),
        ("expired", {"expired", "overdue"}),
        ("cancelled", {"cancelled"}),
    ],
)
def test_person_list_filters_by_verification_state(
    state, expected, superuser_client: Client, people_in_every_state
):
    response = superuser_client.get(_url("person_changelist"), {"verification": state})

    shown = set(response.context["cl"].result_list)
    assert shown == {people_in_every_state[key] for key in expected}


def test_person_list_shows_each_persons_verification_state(
    superuser_client: Client, people_in_every_state
):
    page = superuser_client.get(_url("person_changelist")).content.decode()

    for label, tone in (
        ("Never invited", "grey"),
        ("Invited, waiting", "amber"),
        ("Verified", "green"),
        ("Failed", "red"),
    ):
        assert f'<span class="status-badge status-{tone}">{label}</span>' in page


def test_filtered_person_list_runs_the_same_number_of_queries_for_1_and_20_people(
    superuser_client: Client, django_assert_max_num_queries
):
    url = _url("person_changelist") + "?verification=waiting"
    VerificationSessionFactory()
    with CaptureQueriesContext(connection) as one:
        assert superuser_client.get(url).status_code == 200

    for _ in range(19):
        VerificationSessionFactory()
    with django_assert_max_num_queries(len(one.captured_queries)):
        response = superuser_client.get(url)
    assert response.context["cl"].result_count == 20


# --- "Verify here now": the desk page and its endpoints --------------------------------------


def test_desk_page_passes_its_endpoints_to_the_script_without_inline_script(
    superuser_client: Client,
):
    invitation = VerificationSessionFactory()

    response = superuser_client.get(_url("verificationsession_desk", invitation.pk))

    page = response.content.decode()
    assert response.status_code == 200
    assert f'data-mint-url="{_url("verificationsession_desk_mint", invitation.pk)}"' in page
    assert f'data-status-url="{_url("verificationsession_desk_status", invitation.pk)}"' in page
    assert f'data-max-mints="{DESK_AUTO_MINTS}"' in page
    assert 'data-csrf-token="' in page
    assert "consent/desk.js" in page
    assert "<script>" not in page.replace(" ", "")  # every script has a src
    assert " onclick=" not in page
    assert not invitation.upstream_sessions.exists()  # a GET mints nothing


def test_desk_page_of_an_ended_invitation_goes_back_with_the_reason(superuser_client: Client):
    invitation = VerificationSessionFactory(status=Status.CANCELLED)

    response = superuser_client.get(_url("verificationsession_desk", invitation.pk))

    assert response["Location"] == _url("verificationsession_change", invitation.pk)
    assert "This invitation is cancelled: there is nobody to verify with it." in _messages(response)


def test_desk_status_reports_waiting_a_finished_desk_session_and_verified(
    superuser_client: Client,
):
    invitation = VerificationSessionFactory()
    row = UpstreamSessionFactory(
        invitation=invitation,
        purpose=UpstreamSession.Purpose.DESK,
        status=UpstreamSession.Status.FAILED,
        last_error_code="resultCode=10001",
        last_error="The verification page reported a failure.",
        ended_at=timezone.now(),
    )
    url = _url("verificationsession_desk_status", invitation.pk)

    body = superuser_client.get(url, {"session": row.pk}).json()

    assert (body["state"], body["session"]["finished"]) == ("waiting", True)
    assert body["session"]["message"] == (
        "That attempt failed: resultCode=10001 The verification page reported a failure.. "
        "Show a new code to try again."
    )

    VerificationSession.objects.filter(pk=invitation.pk).update(
        status=Status.VERIFIED, verified_at=timezone.now()
    )
    body = superuser_client.get(url).json()
    assert body["state"] == "verified" and body["session"] is None


def test_desk_status_of_a_cancelled_invitation_is_closed(superuser_client: Client):
    invitation = VerificationSessionFactory(status=Status.CANCELLED)

    body = superuser_client.get(_url("verificationsession_desk_status", invitation.pk)).json()

    assert body["state"] == "closed"
    assert body["message"] == "This invitation is cancelled: no more codes."


def test_desk_status_needs_the_view_permission_and_mint_the_change_permission():
    invitation = VerificationSessionFactory()
    viewer = _staff("view_verificationsession")
    nobody = _staff()

    assert viewer.get(_url("verificationsession_desk_status", invitation.pk)).status_code == 200
    assert nobody.get(_url("verificationsession_desk_status", invitation.pk)).status_code == 403
    assert viewer.post(_url("verificationsession_desk_mint", invitation.pk)).status_code == 403
    assert not invitation.upstream_sessions.exists()


def test_desk_mint_refuses_without_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(superuser=True))
    invitation = VerificationSessionFactory()

    response = client.post(_url("verificationsession_desk_mint", invitation.pk))

    assert response.status_code == 403
    assert not invitation.upstream_sessions.exists()


@pytest.mark.django_db(transaction=True)
def test_desk_mint_starts_a_desk_session_and_answers_its_link_expiry_and_qr_code(
    settings, live_server, tmp_path
):
    use_sandbox(settings, live_server, tmp_path)
    client = Client()
    client.force_login(UserFactory(superuser=True))
    invitation = VerificationSessionFactory(person__preferred_language="zh-Hant")

    response = client.post(_url("verificationsession_desk_mint", invitation.pk))

    assert response.status_code == 201
    body = response.json()
    row = UpstreamSession.objects.get(pk=body["session"])
    assert (row.invitation, row.purpose) == (invitation, UpstreamSession.Purpose.DESK)
    assert body["h5_link"] == row.h5_link and "lng=zh-Hant" in row.h5_link
    assert body["h5_link"].startswith(f"{live_server.url}/sandbox/h5/")
    assert datetime.datetime.fromisoformat(body["expires_at"]) == row.h5_link_expires_at
    assert 119 <= body["expires_in"] <= 120 and body["ttl"] == 120
    assert body["qr"].startswith("<svg ") and 'class="qr-code"' in body["qr"]

    # The person completes on their phone; the confirmation runs; the desk sees it.
    complete_session(row.byted_token, identity="grace")
    sessions.upstream_session_confirm(upstream_session_id=row.pk, force=True)
    status = client.get(_url("verificationsession_desk_status", invitation.pk)).json()
    group = AssetGroup.objects.get(person=invitation.person)
    assert status["state"] == "verified"
    assert status["message"] == f"{invitation.person} is verified (LivenessFace group {group})."


@pytest.mark.django_db(transaction=True)
def test_desk_mint_reports_the_upstreams_refusal_and_an_ended_invitation(
    settings, live_server, tmp_path
):
    use_sandbox(settings, live_server, tmp_path)
    settings.ANYFAST_API_KEY = "sk-aigc-ordinary-key-555555"
    client = Client()
    client.force_login(UserFactory(superuser=True))
    invitation = VerificationSessionFactory()

    response = client.post(_url("verificationsession_desk_mint", invitation.pk))

    assert response.status_code == 502
    assert "GroupType must be one of [AIGC]" in response.json()["error"]
    assert "Byteplus-Direct" in response.json()["error"]  # the guide's explanation

    invitations.invitation_cancel(invitation=invitation, by=None)
    response = client.post(_url("verificationsession_desk_mint", invitation.pk))
    assert response.status_code == 409
    assert json.loads(response.content) == {"error": "This invitation is cancelled."}


@pytest.mark.django_db(transaction=True)
def test_a_failed_desk_attempt_is_reported_to_the_desk(settings, live_server, tmp_path):
    use_sandbox(settings, live_server, tmp_path)
    client = Client()
    client.force_login(UserFactory(superuser=True))
    invitation = VerificationSessionFactory()
    session = client.post(_url("verificationsession_desk_mint", invitation.pk)).json()["session"]
    row = UpstreamSession.objects.get(pk=session)

    fail_session(row.byted_token)
    sessions.upstream_session_record_callback(
        public_id=row.public_id, params={"bytedToken": row.byted_token, "resultCode": "10001"}
    )
    status = client.get(
        _url("verificationsession_desk_status", invitation.pk), {"session": session}
    ).json()

    assert status["state"] == "waiting"
    assert status["session"]["status"] == "callback_received"
    assert status["session"]["message"].startswith("The phone is back from the verification page")
