"""Superusers and Legal sign in with a second factor (authenticator app or recovery code)."""

from __future__ import annotations

import datetime
import re
from base64 import b32decode

import pytest
import time_machine
from axes.models import AccessAttempt
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from portal.two_factor import authenticator_pending, two_factor_enrol
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
ADDRESS = "192.0.2.10"


def _legal(username: str = "lena"):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get_or_create(name="Legal")[0])
    return user


def _superuser(username: str = "root"):
    return UserFactory(username=username, superuser=True)


def _password(client: Client, username: str):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": PASSWORD, "next": "/admin/"},
        REMOTE_ADDR=ADDRESS,
    )


def _code(client: Client, code: str, step: str = "code"):
    return client.post(
        f"/admin/login/{step}/?next=/admin/", {"otp_token": code}, REMOTE_ADDR=ADDRESS
    )


def _now_code(key: bytes) -> str:
    return f"{totp(key):06d}"


def _enrolled(user) -> tuple[TOTPDevice, list[str]]:
    """``user`` with an authenticator set up through the service, and their recovery codes."""
    device = authenticator_pending(user=user)
    codes = two_factor_enrol(user=user, device=device, token=_now_code(device.bin_key))
    assert codes is not None
    device.refresh_from_db()
    return device, codes


def _page(response) -> str:
    return " ".join(response.content.decode().split())


@pytest.mark.parametrize("make_user", [_legal, _superuser], ids=["legal", "superuser"])
def test_the_password_alone_does_not_reach_the_admin(client: Client, make_user):
    user = make_user()
    _enrolled(user)

    response = _password(client, user.username)

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/code/?next=%2Fadmin%2F"
    assert SESSION_KEY not in client.session
    index = client.get("/admin/")
    assert index.status_code == 302
    assert index["Location"].startswith("/admin/login/")
    # Nor any other page that takes a staff session.
    assert client.get("/admin/consent/person/").status_code == 302


@pytest.mark.parametrize("make_user", [_legal, _superuser], ids=["legal", "superuser"])
def test_first_sign_in_enrols_an_app_from_the_page_then_the_app_signs_in(client: Client, make_user):
    user = make_user()
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert _password(client, user.username)["Location"].startswith("/admin/login/code/")
        to_enrol = client.get("/admin/login/code/?next=/admin/")
        assert to_enrol["Location"] == "/admin/login/enrol/?next=%2Fadmin%2F"
        page = client.get(to_enrol["Location"])
        assert page.status_code == 200
        text = _page(page)
        assert re.search(
            r'<svg [^>]*class="qr-code" role="img" '
            r'aria-label="QR code for your authenticator app"',
            text,
        )
        # What a person without a camera does: type the key shown into the app.
        secret = re.search(r'<code class="two-factor-secret">([A-Z2-7 ]+)</code>', text)
        assert secret is not None
        key = b32decode(secret.group(1).replace(" ", ""))

        wrong = _code(client, "000000" if _now_code(key) != "000000" else "111111", "enrol")
        assert wrong.status_code == 200
        assert "That code is not right" in _page(wrong)
        assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()

        done = _code(client, _now_code(key), "enrol")

    assert done.status_code == 200
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(set(codes)) == 10
    assert "they are shown only now" in _page(done)
    assert client.session[SESSION_KEY] == str(user.pk)
    assert client.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(action="two_factor.enrolled", object_id=str(user.pk)).exists()

    # The next sign-in asks for the app's code, and takes it.
    other = Client()
    with time_machine.travel(start + datetime.timedelta(minutes=1), tick=False):
        assert _password(other, user.username)["Location"].startswith("/admin/login/code/")
        assert "Enter the six-digit code" in _page(other.get("/admin/login/code/?next=/admin/"))
        response = _code(other, _now_code(key))

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert other.get("/admin/").status_code == 200
    assert AuditEvent.objects.filter(action="two_factor.verified", actor_id=user.pk).exists()


def test_a_code_already_used_is_refused(client: Client):
    user = _legal()
    device, _ = _enrolled(user)  # used the code of this time step

    _password(client, user.username)
    response = _code(client, _now_code(device.bin_key))

    assert response.status_code == 200
    assert SESSION_KEY not in client.session


def test_a_recovery_code_signs_in_once(client: Client):
    user = _superuser()
    _, codes = _enrolled(user)

    _password(client, user.username)
    first = _code(client, codes[0].upper())  # as typed from a print-out

    assert first["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    event = AuditEvent.objects.filter(action="two_factor.verified").latest("pk")
    assert event.detail == {"device": "Recovery codes", "recovery_codes_left": 9}

    again = Client()
    _password(again, user.username)
    second = _code(again, codes[0])
    assert second.status_code == 200
    assert "That code is not right" in _page(second)
    assert SESSION_KEY not in again.session
    assert _code(again, codes[1])["Location"] == "/admin/"


def test_five_wrong_codes_lock_the_user_out_like_wrong_passwords(client: Client):
    user = _legal()
    device, _ = _enrolled(user)
    _password(client, user.username)

    statuses = [_code(client, f"{n:06d}").status_code for n in range(5)]
    right = _code(client, _now_code(device.bin_key))

    assert statuses == [200, 200, 200, 200, 429]
    attempt = AccessAttempt.objects.get(username=user.username)
    assert attempt.failures_since_start == 5
    assert "000003" not in attempt.post_data
    assert right.status_code == 429
    assert "after 5 wrong passwords or codes" in _page(right)
    assert SESSION_KEY not in client.session
    # The lockout holds the password form too, and every wrong code is in the audit trail.
    assert _password(Client(), user.username).status_code == 429
    failures = AuditEvent.objects.filter(action="two_factor.failed", object_id=str(user.pk))
    assert failures.count() == 5
    assert all("000" not in str(event.detail) for event in failures)


def test_four_wrong_codes_do_not_lock_and_the_sign_in_forgets_them(client: Client):
    user = _legal()
    _, codes = _enrolled(user)
    _password(client, user.username)
    for n in range(4):
        _code(client, f"{n:06d}")

    assert _code(client, codes[0])["Location"] == "/admin/"
    assert not AccessAttempt.objects.filter(username=user.username).exists()


def test_a_user_outside_superusers_and_legal_signs_in_with_the_password(client: Client):
    user = UserFactory(username="olga")
    user.groups.add(Group.objects.get_or_create(name="Onboarding")[0])

    response = _password(client, user.username)

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert not TOTPDevice.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    ("exempt", "step"),
    [
        (["admin", "onboarding", "legal", "producer"], None),  # DEBUG's default (test_settings)
        ([], "/admin/login/code/"),  # production's, the only one it accepts
    ],
    ids=["debug", "production"],
)
def test_the_demo_users_skip_the_second_step_only_in_debug(
    client: Client, settings, exempt: list[str], step: str | None
):
    settings.TWO_FACTOR_EXEMPT_USERS = exempt
    _legal("legal")

    response = _password(client, "legal")

    if step is None:
        assert response["Location"] == "/admin/"
        assert client.session[SESSION_KEY]
    else:
        assert response["Location"].startswith(step)
        assert SESSION_KEY not in client.session


def test_a_right_password_waits_ten_minutes_for_its_code(client: Client):
    user = _legal()
    device, _ = _enrolled(user)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        _password(client, user.username)
    with time_machine.travel(start + datetime.timedelta(minutes=11), tick=False):
        response = _code(client, _now_code(device.bin_key))

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"
    assert SESSION_KEY not in client.session


def test_the_code_step_goes_only_to_pages_of_the_portal(client: Client):
    user = _legal()
    _, codes = _enrolled(user)
    _password(client, user.username)

    response = client.post("/admin/login/code/?next=https://evil.example/", {"otp_token": codes[0]})

    assert response["Location"] == "/admin/"


def test_the_device_admin_lets_a_superuser_remove_devices_without_showing_secrets(
    superuser_client: Client,
):
    user = _legal()
    device, codes = _enrolled(user)
    recovery = user.staticdevice_set.get()

    index = _page(superuser_client.get("/admin/"))
    totp_page = superuser_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    static_page = superuser_client.get(f"/admin/otp_static/staticdevice/{recovery.pk}/change/")

    assert "Otp_Totp" in index and "Otp_Static" in index
    assert totp_page.status_code == static_page.status_code == 200
    assert device.key not in totp_page.content.decode()
    assert not any(code in static_page.content.decode() for code in codes)
    deleted = superuser_client.post(
        f"/admin/otp_totp/totpdevice/{device.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
