"""The person's pages (``/verify/...``) through Django's test client; Start talks to the sandbox
over real HTTP."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from tests.factories import (
    UpstreamSessionFactory,
    UserFactory,
    VerificationSessionFactory,
)
from tests.verification_helpers import AIGC_KEY, use_sandbox
from verification.models import UpstreamSession, VerificationSession

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
WECHAT = IPHONE + " MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN"
INSTAGRAM = IPHONE + " Instagram 330.0.0.0 (iPhone15,2; iOS 17_5)"
DESKTOP = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
Status = VerificationSession.Status


def _page(client: Client, invitation: VerificationSession, ua: str = IPHONE, **query):
    return client.get(f"/verify/{invitation.invitation_token}/", query, headers={"User-Agent": ua})


def _invitation(**kwargs) -> VerificationSession:
    kwargs.setdefault("person__display_name", "Ada")
    kwargs.setdefault("created_by", UserFactory(first_name="Maya", last_name="Lind"))
    return VerificationSessionFactory(**kwargs)


@pytest.mark.django_db
def test_the_invitation_page_says_who_invites_why_and_what_the_consent_covers(client):
    invitation = _invitation()

    response = _page(client, invitation)

    page = response.content.decode()
    assert response.status_code == 200
    assert "Hello Ada" in page and "Maya Lind at The studio invites you" in page
    assert invitation.consent.intended_uses in page and "Spring campaign" in page
    assert "images, video" in page
    assert ">Start verification</button>" in page
    assert "You have 5 attempts left" in page
    assert "no-store" in response["Cache-Control"]
    assert "in-app-warning" not in page and "desktop-warning" not in page


@pytest.mark.django_db
def test_opening_the_page_starts_no_upstream_session(client):
    invitation = _invitation()

    _page(client, invitation)
    _page(client, invitation)

    invitation.refresh_from_db()
    assert invitation.status == Status.OPENED
    assert not UpstreamSession.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "button"),
    [("zh", "开始验证"), ("zh-Hant", "開始驗證"), ("en", "Start verification")],
)
def test_the_page_is_in_the_persons_language(client, language, button):
    invitation = _invitation(person__preferred_language=language)

    page = _page(client, invitation).content.decode()

    assert f">{button}</button>" in page


@pytest.mark.django_db
def test_the_person_can_switch_language(client):
    invitation = _invitation(person__preferred_language="en")

    response = _page(client, invitation, lang="zh-hant")

    assert ">開始驗證</button>" in response.content.decode()
    assert response["Content-Language"] == "zh-hant"


@pytest.mark.django_db
@pytest.mark.parametrize(("ua", "app"), [(WECHAT, "WeChat"), (INSTAGRAM, "Instagram")])
def test_in_app_browsers_are_warned_before_a_session_is_burned(client, ua, app):
    page = _page(client, _invitation(), ua=ua).content.decode()

    assert 'id="in-app-warning"' in page and f"open inside {app}" in page


@pytest.mark.django_db
def test_a_desktop_is_shown_a_qr_code_of_the_page_and_the_short_code(client):
    invitation = _invitation()

    page = _page(client, invitation, ua=DESKTOP).content.decode()

    assert 'id="desktop-warning"' in page and "<svg" in page
    assert invitation.display_code in page


@pytest.mark.django_db
def test_the_page_may_post_start_to_the_providers_https_page_and_its_script_has_the_nonce(client):
    response = _page(client, _invitation(), ua=DESKTOP)

    policy = response["Content-Security-Policy"]
    # Start is redirected to the H5 page on the provider's origin: form-action must allow it.
    assert "form-action 'self' https:" in policy
    nonce = policy.split("'nonce-")[1].split("'")[0]
    assert f'<script nonce="{nonce}">' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("status", "http", "text"),
    [
        (Status.EXPIRED, 410, "This invitation has expired"),
        (Status.CANCELLED, 410, "This invitation was cancelled"),
        (Status.FAILED, 410, "no attempts left"),
    ],
)
def test_an_ended_invitation_says_so_plainly(client, status, http, text):
    response = _page(client, _invitation(status=status))

    assert response.status_code == http
    assert text in response.content.decode()
    assert "Start verification" not in response.content.decode()


@pytest.mark.django_db
def test_a_verified_invitation_thanks_the_person(client):
    response = _page(client, _invitation(verified=True))

    assert response.status_code == 200 and "You are verified" in response.content.decode()


@pytest.mark.django_db
def test_an_invitation_past_its_lifetime_says_it_expired(client):
    invitation = _invitation()

    with time_machine.travel(invitation.expires_at + datetime.timedelta(minutes=1)):
        response = _page(client, invitation)

    assert response.status_code == 410 and "has expired" in response.content.decode()


@pytest.mark.django_db
def test_an_unknown_link_gets_a_neutral_404(client):
    response = client.get("/verify/no-such-token/")

    assert response.status_code == 404 and "This link does not work" in response.content.decode()


# --- The short code ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_typed_code_leads_to_the_invitation(client):
    invitation = _invitation()

    response = client.post("/verify/", {"code": invitation.display_code.lower(), "lang": "en"})

    assert response.status_code == 302
    assert response["Location"] == f"/verify/{invitation.invitation_token}/?lang=en"


@pytest.mark.django_db
def test_a_wrong_code_is_refused_and_guessing_is_slowed_down(client):
    _invitation()
    for _ in range(10):
        wrong = client.post("/verify/", {"code": "AAAA-AAAA"})
        assert wrong.status_code == 404
    assert "No open invitation has this code" in wrong.content.decode()

    blocked = client.post("/verify/", {"code": "AAAA-AAAA"})

    assert blocked.status_code == 429 and "Too many tries" in blocked.content.decode()


# --- The callback page ------------------------------------------------------------------------


def _callback(client: Client, verification: UpstreamSession, code: str = "10000"):
    query = {"bytedToken": verification.byted_token, "resultCode": code, "verify_type": "real_time"}
    return client.get(f"/verify/callback/{verification.public_id}/", query)


@pytest.mark.django_db
def test_the_callback_page_thanks_the_person_in_their_language_and_queues_a_confirmation(
    client, queued, django_capture_on_commit_callbacks
):
    verification = UpstreamSessionFactory(language="zh")

    with django_capture_on_commit_callbacks(execute=True):
        response = _callback(client, verification)

    page = response.content.decode()
    assert response.status_code == 200 and "谢谢！" in page  # noqa: RUF001
    assert f"/verify/callback/{verification.public_id}/status/" in page
    verification.refresh_from_db()
    assert verification.status == UpstreamSession.Status.CALLBACK_RECEIVED
    assert len(queued.calls) == 1


@pytest.mark.django_db
def test_a_failure_callback_offers_to_try_again_from_the_invitation(client, queued):
    verification = UpstreamSessionFactory()

    page = _callback(client, verification, "10001").content.decode()

    assert "Verification did not finish" in page
    assert f"/verify/{verification.invitation.invitation_token}/" in page


@pytest.mark.django_db
def test_a_replayed_or_unknown_callback_gets_a_neutral_page(
    client, queued, django_capture_on_commit_callbacks
):
    verification = UpstreamSessionFactory()
    with django_capture_on_commit_callbacks(execute=True):
        _callback(client, verification)
        replay = _callback(client, verification)
        unknown = client.get("/verify/callback/5f0c7a51-7a0b-4b1e-9a55-000000000000/")

    for response in (replay, unknown):
        assert response.status_code == 200
        assert "There is nothing more to do on this page" in response.content.decode()
    assert len(queued.calls) == 1


@pytest.mark.django_db
def test_the_status_endpoint_reports_what_the_upstream_decided(client):
    pending = UpstreamSessionFactory()
    confirmed = UpstreamSessionFactory(
        status=UpstreamSession.Status.CONFIRMED,
        group_id="group-1",
        confirmed_at=timezone.now(),
    )

    def status(row):
        return client.get(f"/verify/callback/{row.public_id}/status/").json()["status"]

    assert (status(pending), status(confirmed)) == ("pending", "verified")
    assert (
        client.get("/verify/callback/5f0c7a51-7a0b-4b1e-9a55-000000000000/status/").status_code
        == 404
    )


# --- Start (against the sandbox) ----------------------------------------------------------------


@pytest.fixture
def upstream(settings, live_server, tmp_path):
    use_sandbox(settings, live_server, tmp_path)
    return live_server


@pytest.mark.django_db(transaction=True)
def test_start_redirects_the_phone_to_a_fresh_h5_link_in_its_language(client, upstream):
    invitation = _invitation(person__preferred_language="en")

    response = client.post(f"/verify/{invitation.invitation_token}/start/", {"lang": "zh-hans"})

    verification = UpstreamSession.objects.get()
    assert response.status_code == 302 and response["Location"] == verification.h5_link
    assert verification.h5_link.startswith(f"{upstream.url}/sandbox/h5/")
    assert verification.h5_link.endswith("lng=zh") and verification.language == "zh"


@pytest.mark.django_db(transaction=True)
def test_start_needs_the_pages_csrf_token(upstream):
    invitation = _invitation()

    response = Client(enforce_csrf_checks=True).post(
        f"/verify/{invitation.invitation_token}/start/"
    )

    assert response.status_code == 403 and not UpstreamSession.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_start_on_an_ended_invitation_goes_back_to_the_page_that_says_so(client, upstream):
    invitation = _invitation(status=Status.CANCELLED)

    response = client.post(f"/verify/{invitation.invitation_token}/start/")

    assert response.status_code == 302
    assert response["Location"].startswith(f"/verify/{invitation.invitation_token}/")
    assert not UpstreamSession.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_start_after_the_last_attempt_says_every_attempt_was_used(client, upstream, settings):
    settings.VERIFICATION_MAX_ATTEMPTS = 1
    invitation = _invitation()
    client.post(f"/verify/{invitation.invitation_token}/start/")

    page = client.get(f"/verify/{invitation.invitation_token}/").content.decode()
    again = client.post(f"/verify/{invitation.invitation_token}/start/")

    assert "Start verification" not in page  # no attempt left: no button
    assert again.status_code == 409
    assert "Every verification attempt of this invitation was used" in again.content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_upstream_refusal_apologises_to_the_person_without_details(client, upstream, settings):
    settings.ANYFAST_API_KEY = AIGC_KEY
    invitation = _invitation()

    response = client.post(f"/verify/{invitation.invitation_token}/start/")

    page = response.content.decode()
    assert response.status_code == 503
    assert "We could not start the verification right now" in page
    assert "AIGC" not in page and "Byteplus" not in page
