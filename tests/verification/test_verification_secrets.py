"""Credentials kept close (issue 13): what view-only staff see, forged callbacks, the upstream's
words with a BytedToken in them, typed-code guessing across threads and addresses, and the
attempts limit under simultaneous presses of Start."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from portal import roles
from portal.models import ThrottleCount
from sandbox.servers import gunicorn
from tests.factories import (
    OutboundEmailFactory,
    UpstreamSessionFactory,
    UserFactory,
    VerificationSessionFactory,
)
from tests.verification_helpers import use_sandbox
from verification import throttle
from verification.models import UpstreamSession, VerificationSession
from verification.services import sessions

Status = UpstreamSession.Status


def _legal_client() -> Client:
    roles.roles_apply()
    user = UserFactory(username="legal-viewer", password=None)
    user.groups.add(Group.objects.get(name="Legal"))
    client = Client()
    client.force_login(user)
    return client


def _secrets(invitation: VerificationSession, row: UpstreamSession) -> list[str]:
    assert row.byted_token
    return [
        invitation.invitation_token,
        invitation.code,
        invitation.display_code,
        reverse("verify:invitation", args=[invitation.invitation_token]),
        row.byted_token,
    ]


# --- What staff who may not change invitations see ----------------------------------------------


@pytest.mark.django_db
def test_legal_sees_no_code_token_or_link_on_invitation_person_and_upstream_pages():
    invitation = VerificationSessionFactory()
    token = "20261203090000ABCDEF0123456789AB"
    row = UpstreamSessionFactory(
        invitation=invitation,
        byted_token=token,
        status=Status.EXPIRED,
        next_poll_at=None,
        last_error_code="NotFound.BytedToken",
        # As stored before tokens were masked on the way in.
        last_error=f"The specified BytedToken {token} is not found.",
    )
    link = f"https://portal.test/verify/{invitation.invitation_token}/"
    email = OutboundEmailFactory(
        about=invitation, body_text=f"Open {link} or type the code {invitation.display_code}."
    )
    legal = _legal_client()
    pages = [
        reverse("admin:verification_verificationsession_change", args=[invitation.pk]),
        reverse("admin:consent_person_change", args=[invitation.person_id]),
        reverse("admin:verification_upstreamsession_change", args=[row.pk]),
        reverse("admin:verification_upstreamsession_changelist"),
        reverse("admin:mail_outboundemail_change", args=[email.pk]),
    ]

    for url in pages:
        response = legal.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        for secret in _secrets(invitation, row):
            assert secret not in page, (url, secret)
    # What they may see stays: the upstream's words with the token cut short.
    upstream_page = legal.get(pages[2]).content.decode()
    assert f"BytedToken …{token[-6:]} is not found" in upstream_page
    assert "Open https://portal.test/verify/[hidden]/ or type the code [hidden]." in (
        legal.get(pages[4]).content.decode()
    )


@pytest.mark.django_db
def test_staff_who_may_change_invitations_see_the_invitation_email_as_sent(superuser_client):
    invitation = VerificationSessionFactory()
    email = OutboundEmailFactory(about=invitation, body_text=f"Code {invitation.display_code}.")

    page = superuser_client.get(reverse("admin:mail_outboundemail_change", args=[email.pk]))

    assert f"Code {invitation.display_code}." in page.content.decode()


# --- Callbacks ----------------------------------------------------------------------------------


def _visit_callback(client: Client, row: UpstreamSession, **params: str):
    return client.get(f"/verify/callback/{row.public_id}/", params)


@pytest.mark.django_db
@pytest.mark.parametrize("forged_token", [None, "", "20261124120000WRONGWRONGWRONGWRONG"])
def test_a_callback_without_the_sessions_bytedtoken_records_nothing_and_shows_the_neutral_page(
    forged_token, client: Client, queued
):
    row = UpstreamSessionFactory()
    params = {"resultCode": "10001", "verify_type": "real_time"}
    if forged_token is not None:
        params["bytedToken"] = forged_token

    forged = _visit_callback(client, row, **params)

    page = forged.content.decode()
    assert forged.status_code == 200
    assert row.invitation.invitation_token not in page and "Try again" not in page
    assert "Verification did not finish" not in page
    row.refresh_from_db()
    assert row.callback_received_at is None and row.status == Status.CREATED
    assert not AuditEvent.objects.filter(action="verification.callback").exists()
    assert queued.calls == []

    genuine = _visit_callback(client, row, bytedToken=row.byted_token or "", resultCode="10001")

    assert "Verification did not finish" in genuine.content.decode()
    row.refresh_from_db()
    assert row.callback_received_at is not None and row.callback_result_code == "10001"


# --- The upstream's words ----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_upstreams_words_are_stored_with_the_bytedtoken_masked(settings, live_server, tmp_path):
    use_sandbox(settings, live_server, tmp_path)
    token = "20261203090000FEDCBA9876543210AB"  # one the sandbox never made
    row = UpstreamSessionFactory(byted_token=token)

    after = sessions.upstream_session_confirm(upstream_session_id=row.pk, force=True)

    assert after.status == Status.EXPIRED and "NotFound" in after.last_error_code
    assert token not in after.last_error and f"…{token[-6:]}" in after.last_error
    events = AuditEvent.objects.filter(object_id=str(row.pk))
    assert all(token not in str(event.detail) for event in events)


# --- Typed codes -------------------------------------------------------------------------------


def _guess(client: Client, code: str = "AAAA-AAAA", **extra: Any) -> int:
    return client.post("/verify/", {"code": code}, **extra).status_code


@pytest.mark.django_db
def test_behind_a_proxy_a_locked_out_address_locks_out_nobody_else(client: Client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    invitation = VerificationSessionFactory()
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    attacker = {**proxy, "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    person = {**proxy, "HTTP_X_FORWARDED_FOR": "198.51.100.7"}

    assert [_guess(client, **attacker) for _ in range(throttle.CODE_TRIES)] == [404] * 10
    assert _guess(client, **attacker) == 429
    # What the attacker writes left of the proxy's entry changes nothing.
    assert _guess(client, HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9", **proxy) == 429

    assert _guess(client, **person) == 404
    assert _guess(client, invitation.display_code, **person) == 302


@pytest.mark.django_db
def test_a_right_code_does_not_count_as_a_try(client: Client):
    invitation = VerificationSessionFactory()
    for _ in range(throttle.CODE_TRIES + 3):
        assert _guess(client, invitation.display_code) == 302
    assert _guess(client) == 404


def _at_once(count: int, work: Callable[[], Any]) -> list[Any]:
    """``work`` in ``count`` threads released together, each with its own connection."""
    barrier = threading.Barrier(count)
    results: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        try:
            barrier.wait()
            result = work()
            with lock:
                results.append(result)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_simultaneous_guesses_are_counted_exactly():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions need PostgreSQL")
    VerificationSessionFactory()

    statuses = _at_once(30, lambda: _guess(Client(), REMOTE_ADDR="203.0.113.9"))

    assert sorted(statuses) == [404] * throttle.CODE_TRIES + [429] * 20
    assert ThrottleCount.objects.get(key=throttle.code_try_key("203.0.113.9")).taken == 30


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_guesses_spread_over_two_gunicorn_workers_share_one_exact_count(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("the workers share the test's PostgreSQL database")
    VerificationSessionFactory()
    db = connection.settings_dict
    env = {
        "DEBUG": "true",
        "PORTAL_VAR_DIR": str(tmp_path),
        "DATABASE_URL": (
            f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
    }
    with gunicorn(env, workers=2, threads=4) as base_url:
        browser = requests.Session()
        form = browser.get(f"{base_url}/verify/", timeout=30).text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
        assert csrf is not None

        def guess() -> int:
            data = {"code": "AAAA-AAAA", "csrfmiddlewaretoken": csrf.group(1)}
            return browser.post(f"{base_url}/verify/", data=data, timeout=30).status_code

        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: guess(), range(30)))

    assert sorted(statuses) == [404] * throttle.CODE_TRIES + [429] * 20


# --- Start ---------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_simultaneous_start_presses_make_exactly_the_allowed_attempts(
    settings, live_server, tmp_path
):
    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL")
    use_sandbox(settings, live_server, tmp_path)
    invitation = VerificationSessionFactory()
    start = reverse("verify:start", args=[invitation.invitation_token])

    statuses = _at_once(10, lambda: Client().post(start).status_code)

    allowed = settings.VERIFICATION_MAX_ATTEMPTS
    assert UpstreamSession.objects.filter(invitation=invitation).count() == allowed
    assert sorted(statuses) == [302] * allowed + [409] * (10 - allowed)
