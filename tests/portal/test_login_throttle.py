"""Password guessing at the admin login is throttled (django-axes), and sessions are short."""

from __future__ import annotations

import datetime

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.core.management import call_command
from django.test import Client, RequestFactory
from django.utils import timezone

from portal.client_ip import client_ip
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
GUESSES = [f"wrong-guess-{n}" for n in range(5)]


def _log_in(client: Client, username: str, password: str, address: str = "192.0.2.10"):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
    )


@pytest.fixture(autouse=True)
def fast_password_hashing(settings) -> None:
    """Each login attempt hashes a password: PBKDF2 would take most of these tests' time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _guess_five_times(client: Client, username: str, address: str = "192.0.2.10") -> None:
    """Five wrong passwords: four get the form again, the fifth the lockout page."""
    statuses = [_log_in(client, username, guess, address).status_code for guess in GUESSES]
    assert statuses == [200, 200, 200, 200, 429]


def test_after_five_wrong_passwords_the_right_one_is_refused_with_the_lockout_page(
    client: Client,
):
    UserFactory(username="onboarding")
    _guess_five_times(client, "onboarding")

    response = _log_in(client, "onboarding", PASSWORD)

    assert response.status_code == 429
    assert SESSION_KEY not in client.session
    page = " ".join(response.content.decode().split())
    assert "Talent Consent Portal" in page  # the admin's own header
    assert "Sign-in is paused for onboarding from your address after 5 wrong passwords" in page
    assert "Wait 15 minutes without trying" in page


def test_four_wrong_passwords_do_not_lock_and_a_success_forgets_them(client: Client):
    UserFactory(username="onboarding")
    for guess in GUESSES[:4]:
        _log_in(client, "onboarding", guess)

    assert _log_in(client, "onboarding", PASSWORD).status_code == 302
    assert not AccessAttempt.objects.filter(username="onboarding").exists()


def test_the_lockout_holds_one_user_name_from_one_address(client: Client):
    UserFactory(username="onboarding")
    UserFactory(username="legal")
    _guess_five_times(client, "onboarding", address="192.0.2.10")

    other_user = _log_in(Client(), "legal", PASSWORD, address="192.0.2.10")
    other_address = _log_in(Client(), "onboarding", PASSWORD, address="198.51.100.7")

    assert other_user.status_code == 302
    assert other_address.status_code == 302


def test_the_lockout_ends_after_the_cool_off(client: Client):
    UserFactory(username="onboarding")
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _guess_five_times(client, "onboarding")
    with time_machine.travel(start + datetime.timedelta(minutes=14), tick=False):
        assert _log_in(client, "onboarding", PASSWORD).status_code == 429

    # Each attempt during the lockout restarts the wait: 15 minutes after the last one.
    with time_machine.travel(start + datetime.timedelta(minutes=30), tick=False):
        response = _log_in(client, "onboarding", PASSWORD)

    assert response.status_code == 302
    assert client.session[SESSION_KEY]


def test_an_administrator_can_unlock_a_user_name_at_once(client: Client):
    UserFactory(username="onboarding")
    _guess_five_times(client, "onboarding")

    call_command("axes_reset_username", "onboarding")

    assert _log_in(client, "onboarding", PASSWORD).status_code == 302


def test_failed_attempts_keep_no_password(client: Client):
    _guess_five_times(client, "onboarding")

    attempt = AccessAttempt.objects.get(username="onboarding")
    assert attempt.failures_since_start == 5
    assert "wrong-guess" not in attempt.post_data


def test_a_staff_session_lasts_eight_hours(client: Client):
    UserFactory(username="onboarding")

    response = _log_in(client, "onboarding", PASSWORD)

    assert response.status_code == 302
    assert response.cookies["sessionid"]["max-age"] == 8 * 60 * 60


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "203.0.113.5", "10.0.0.1"),  # no proxy: the header is the client's own words
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "1.2.3.4, 203.0.113.5", "203.0.113.5"),  # a forged entry on the left is ignored
        (2, "1.2.3.4, 203.0.113.5, 10.0.0.9", "203.0.113.5"),
        (2, "203.0.113.5", "10.0.0.1"),  # fewer entries than proxies: not via the proxies
    ],
)
def test_failed_logins_count_against_the_address_the_outermost_proxy_saw(
    settings, proxies: int, forwarded_for: str, expected: str
):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().post(
        "/admin/login/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded_for
    )

    assert client_ip(request) == expected
