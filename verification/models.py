"""Invitations to real-person verification and the upstream sessions made from them.

An invitation (``VerificationSession``) and an upstream session (``UpstreamSession``) have
different lifetimes. The invitation is the portal's: a link and a short code that live for days
(``VERIFICATION_INVITATION_TTL_DAYS``). An upstream session is the provider's: its H5 link works
once and for 120 s, its BytedToken for up to 30 min. So the portal mints an upstream session only
when the person is actually there (they press "Start verification", or staff show a desk QR),
and an invitation collects every attempt made from it. Status changes go through
``verification.services``, applied with conditional updates.
"""

from __future__ import annotations

import datetime
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from consent.models import ConsentRecord, Language, Person
from mail.models import emails_about
from portal.constraints import FieldCheckConstraint

# An invitation's expiry, decided here only: when one made now stops working, and the rule that
# it has stopped (the same rule in SQL, ``past_expiry``, and on a row, ``is_past_expiry``).


def invitation_expiry() -> datetime.datetime:
    """When an invitation made now stops working (``VERIFICATION_INVITATION_TTL_DAYS``)."""
    return timezone.now() + datetime.timedelta(days=settings.VERIFICATION_INVITATION_TTL_DAYS)


def past_expiry(now: datetime.datetime | Now) -> Q:
    """Invitations whose lifetime has passed at ``now`` (a time, or the database's ``Now()``)."""
    return Q(expires_at__lte=now)


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)


# Letters and digits that cannot be mistaken for one another when read aloud or typed on a phone
# (no 0/O, 1/I/L). 31^8 ≈ 8.5·10^11 codes.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8


def new_invitation_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalise_code(text: str) -> str:
    """What a person typed (``abcd-efgh``, ``ABCD EFGH``) as a stored code (``ABCDEFGH``)."""
    return "".join(ch for ch in text.upper() if ch.isalnum())


def format_code(code: str) -> str:
    """A code as shown to people: two groups of four (``ABCD-EFGH``)."""
    return f"{code[:4]}-{code[4:]}" if len(code) == CODE_LENGTH else code


class VerificationStatus(models.TextChoices):
    INVITED = "invited", "Invited"
    OPENED = "opened", "Opened"
    VERIFIED = "verified", "Verified"
    FAILED = "failed", "Failed (attempts exhausted)"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# Invitations that still wait for the person: a person has at most one (a constraint below).
OPEN_VERIFICATION_STATUSES = [VerificationStatus.INVITED, VerificationStatus.OPENED]


class VerificationSessionQuerySet(models.QuerySet["VerificationSession"]):
    def open(self) -> VerificationSessionQuerySet:
        return self.filter(status__in=OPEN_VERIFICATION_STATUSES)

    def overdue(self, now: datetime.datetime) -> VerificationSessionQuerySet:
        """Open invitations whose lifetime has passed (``invitation_expire_overdue`` ends them)."""
        return self.open().filter(past_expiry(now))


class VerificationSession(models.Model):
    """An invitation of a person to real-person verification (shown to staff as "invitation").

    The person reaches it by the link in their email (``invitation_token``), or by typing the short
    ``code`` at ``/verify/``. Every upstream session made from it is an ``UpstreamSession``.
    """

    Status = VerificationStatus

    person = models.ForeignKey(
        Person, on_delete=models.PROTECT, related_name="verification_sessions"
    )
    consent = models.ForeignKey(
        ConsentRecord,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="verification_sessions",
        help_text="The consent record this verification backs.",
    )
    invitation_token = models.CharField(
        max_length=64, unique=True, default=new_invitation_token, editable=False
    )
    code = models.CharField(
        max_length=CODE_LENGTH,
        default=new_invitation_code,
        editable=False,
        help_text="Short code the person can type at /verify/ when they cannot scan or click.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INVITED)
    expires_at = models.DateTimeField(default=invitation_expiry)
    opened_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When it became verified, failed, expired or cancelled."
    )
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who cancelled it (or reissued it), when a person did.",
    )
    replaced_by = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="replaces",
        help_text="The invitation issued in its place.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    emails = emails_about()
    objects = VerificationSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="invitation_newest_first"),
            # A person's latest invitation, and the invitations of one status (the people queues),
            models.Index(fields=["person", "-created_at", "-id"], name="invitation_person_latest"),
            models.Index(fields=["status"], name="invitation_status"),
        ]
        verbose_name = "invitation"
        constraints = [
            FieldCheckConstraint(
                condition=Q(status__in=VerificationStatus.values),
                name="verification_status_valid",
                field="status",
                violation_error_message="This is not a status a verification session can have.",
            ),
            models.UniqueConstraint(
                fields=["person"],
                condition=Q(status__in=OPEN_VERIFICATION_STATUSES),
                name="one_open_verification_per_person",
                violation_error_message=(
                    "This person already has an open invitation: complete or cancel it first."
                ),
                # Shown on the person field (Django puts "unique" errors of one field there).
                violation_error_code="unique",
            ),
            models.UniqueConstraint(
                fields=["code"],
                condition=Q(status__in=OPEN_VERIFICATION_STATUSES),
                name="verification_code_unique_while_open",
                violation_error_message="Another open invitation has this code.",
            ),
            FieldCheckConstraint(
                condition=~Q(status="verified") | Q(verified_at__isnull=False),
                name="verification_verified_has_time",
                field="status",
                violation_error_message="A verified invitation needs the time it was verified.",
            ),
        ]

    def __str__(self) -> str:
        return f"Invitation of {self.person} ({self.get_status_display()})"

    def clean(self) -> None:
        consent = self.consent
        if consent is not None and self.person_id and consent.person_id != self.person_id:
            raise ValidationError({"consent": "This consent record is another person's."})

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_VERIFICATION_STATUSES

    def is_past_expiry(self, now: datetime.datetime) -> bool:
        """Whether its lifetime has passed at ``now`` (``past_expiry`` on one row)."""
        return self.expires_at <= now

    @property
    def display_code(self) -> str:
        return format_code(self.code)

    # Who may hold the invitation's credentials (its link and code): staff who may change
    # invitations (mail's admin hides them in the email's body from others).
    credentials_permission = "verification.change_verificationsession"

    def credentials(self) -> list[str]:
        """What opens the invitation: its token and its code (as stored and as shown)."""
        return [self.invitation_token, self.display_code, self.code]

    def counted_attempts(self) -> int:
        """Attempts that count against ``VERIFICATION_MAX_ATTEMPTS``: see ``attempts()``."""
        return self.upstream_sessions.attempts().count()


class UpstreamPurpose(models.TextChoices):
    PHONE = "phone", "Invitation link on the person's phone"
    DESK = "desk", "QR code shown by staff at the desk"


class UpstreamStatus(models.TextChoices):
    CREATED = "created", "Created"
    CALLBACK_RECEIVED = "callback_received", "Callback received"
    CONFIRMED = "confirmed", "Confirmed"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


# Upstream sessions whose outcome is still unknown: confirmation and polling look at these.
PENDING_UPSTREAM_STATUSES = [UpstreamStatus.CREATED, UpstreamStatus.CALLBACK_RECEIVED]


class UpstreamSessionQuerySet(models.QuerySet["UpstreamSession"]):
    def pending(self) -> UpstreamSessionQuerySet:
        return self.filter(status__in=PENDING_UPSTREAM_STATUSES, byted_token__isnull=False)

    def due_for_poll(self, now: datetime.datetime | None = None) -> UpstreamSessionQuerySet:
        """Pending sessions whose next poll time has come, oldest first."""
        now = now or timezone.now()
        return self.pending().filter(next_poll_at__lte=now).order_by("created_at", "pk")

    def attempts(self) -> UpstreamSessionQuerySet:
        """The person's attempts: every session started from their phone (pressing "Start" uses
        one), and a desk session only once its callback arrived (the desk page mints a fresh QR
        every two minutes while staff wait, and an unused QR is no attempt). A start the
        upstream refused is no attempt either."""
        started_on_phone = Q(purpose=UpstreamPurpose.PHONE, byted_token__isnull=False)
        return self.filter(started_on_phone | Q(callback_received_at__isnull=False))


class UpstreamSession(models.Model):
    """One upstream verification session (CreateVisualValidateSession) made for an invitation.

    Every attempt stays on record, including starts the upstream refused (no BytedToken, status
    failed, the error kept). ``public_id`` names the session in its CallbackURL.
    """

    Purpose = UpstreamPurpose
    Status = UpstreamStatus

    public_id = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    invitation = models.ForeignKey(
        VerificationSession, on_delete=models.PROTECT, related_name="upstream_sessions"
    )
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED)
    language = models.CharField(
        max_length=8, choices=Language.choices, default=Language.ENGLISH, help_text="H5 lng."
    )
    byted_token = models.CharField("BytedToken", max_length=64, unique=True, null=True, blank=True)
    h5_link = models.URLField("H5 link", max_length=2000, blank=True)
    h5_link_expires_at = models.DateTimeField(null=True, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    api_key_fingerprint = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(
        default=0, help_text="GetVisualValidateResult calls made to confirm it."
    )
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=100, blank=True)
    last_error = models.TextField(blank=True, help_text="The upstream's own words.")
    last_error_explanation = models.TextField(blank=True, help_text="What it means, what to do.")
    group_id = models.CharField("GroupId", max_length=64, blank=True)
    callback_params = models.JSONField(default=dict, blank=True)
    callback_received_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When it became confirmed, failed or expired."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Staff who showed the desk QR (empty when the person started it).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UpstreamSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="upstream_session_newest_first"),
        ]
        verbose_name = "upstream session"
        constraints = [
            FieldCheckConstraint(
                condition=Q(status__in=UpstreamStatus.values),
                name="upstream_status_valid",
                field="status",
                violation_error_message="This is not a status an upstream session can have.",
            ),
            FieldCheckConstraint(
                condition=Q(purpose__in=UpstreamPurpose.values),
                name="upstream_purpose_valid",
                field="purpose",
                violation_error_message=(
                    "An upstream session is started from the phone or at the desk."
                ),
            ),
            FieldCheckConstraint(
                condition=~Q(status="confirmed") | ~Q(group_id=""),
                name="upstream_confirmed_has_group",
                field="status",
                violation_error_message=(
                    "A confirmed upstream session needs the GroupId it produced."
                ),
            ),
            FieldCheckConstraint(
                condition=~Q(status__in=["created", "callback_received"])
                | Q(byted_token__isnull=False),
                name="upstream_pending_has_token",
                field="byted_token",
                violation_error_message="An upstream session still waiting needs its BytedToken.",
            ),
        ]

    def __str__(self) -> str:
        token = f"…{self.byted_token[-6:]}" if self.byted_token else "no token"
        return f"Upstream session {token} ({self.get_status_display()})"

    @property
    def is_pending(self) -> bool:
        return self.status in PENDING_UPSTREAM_STATUSES

    @property
    def callback_result_code(self) -> str:
        """The ``resultCode`` the callback claimed (``10000`` = success), or ``""``.

        A claim only: the person's browser carries it, so only GetVisualValidateResult decides.
        """
        value = self.callback_params.get("resultCode", "")
        return value if isinstance(value, str) else ""
