"""Two-factor sign-in of superusers and Legal: who needs it, enrolment, checking a code.

Superusers and members of the Legal group hold the portal's most sensitive powers (every
permission; approving and revoking consent, evidence bundles), so after their password they give
a code from an authenticator app (django-otp's TOTP device) or one of ten one-time recovery codes
(its static device). The sign-in pages that ask for them are ``portal.two_factor_views``; this
module holds the rules and the writes, each audited in its own transaction.
"""

from __future__ import annotations

from base64 import b32encode
from typing import Any

from django.conf import settings
from django.db import transaction
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.services import audit_record
from portal.roles import LEGAL

RECOVERY_CODE_COUNT = 10
AUTHENTICATOR_NAME = "Authenticator app"
RECOVERY_CODES_NAME = "Recovery codes"


def two_factor_required(user: Any) -> bool:
    """Whether ``user`` must give a second factor after the password.

    Superusers and members of Legal do, but for the user names of ``TWO_FACTOR_EXEMPT_USERS``:
    the demo's, which the settings hold only when the portal starts with ``DEBUG=true`` (they
    refuse to start in production with any).
    """
    if user.get_username() in settings.TWO_FACTOR_EXEMPT_USERS:
        return False
    return bool(user.is_superuser or user.groups.filter(name=LEGAL.name).exists())


def two_factor_enrolled(user: Any) -> bool:
    """Whether ``user`` has a confirmed authenticator app."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def authenticator_pending(*, user: Any) -> TOTPDevice:
    """The authenticator ``user`` is enrolling: a new secret, or the one shown before (a reload
    of the enrolment page keeps the QR code the phone may have scanned already)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR_NAME, confirmed=False)


def authenticator_secret(device: TOTPDevice) -> str:
    """The device's secret as an authenticator app takes it typed in: base32, in groups of 4."""
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def two_factor_enrol(*, user: Any, device: TOTPDevice, token: str) -> list[str] | None:
    """Confirms ``device`` with a code it shows and gives ``user`` new recovery codes.

    Returns the recovery codes (shown once), or ``None`` when the code is wrong (audited as a
    failure). Any other authenticator and the old recovery codes of the user are removed.
    """
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk, user=user)
        if device.confirmed or not device.verify_token(_digits(token)):
            _audit_failure(user=user, step="enrolment")
            return None
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        StaticDevice.objects.filter(user=user).delete()
        recovery = StaticDevice.objects.create(user=user, name=RECOVERY_CODES_NAME)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=recovery, token=c) for c in codes)
        audit_record(
            action="two_factor.enrolled",
            obj=user,
            actor=user,
            detail={"device": device.name, "recovery_codes": RECOVERY_CODE_COUNT},
        )
    return codes


def two_factor_verify(*, user: Any, token: str) -> Device | None:
    """The device of ``user`` that accepts ``token`` (a six-digit code or a recovery code, which
    is used up), or ``None`` (audited as a failure)."""
    with transaction.atomic():
        # One check at a time per user: a recovery code sent twice at once works once.
        devices = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        recovery = list(StaticDevice.objects.select_for_update().filter(user=user))
        digits = _digits(token)
        device: Device | None = next(
            (d for d in devices if digits.isdigit() and d.verify_token(digits)), None
        )
        if device is None:
            code = "".join(token.split()).lower()
            device = next((d for d in recovery if code and d.verify_token(code)), None)
        if device is None:
            _audit_failure(user=user, step="sign-in")
            return None
        detail: dict[str, Any] = {"device": device.name}
        if isinstance(device, StaticDevice):
            detail["recovery_codes_left"] = device.token_set.count()
        audit_record(action="two_factor.verified", obj=user, actor=user, detail=detail)
    return device


def _digits(token: str) -> str:
    """A six-digit code as typed, without the spaces apps show in the middle."""
    return "".join(token.split())


def _audit_failure(*, user: Any, step: str) -> None:
    # The code typed is never recorded: a near miss would tell a reader most of a valid one.
    audit_record(action="two_factor.failed", obj=user, actor=user, detail={"step": step})
