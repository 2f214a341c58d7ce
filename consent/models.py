"""People, the consent they gave, and their real-person verification sessions."""

from __future__ import annotations

import datetime
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Language(models.TextChoices):
    """Languages of the upstream verification page (its ``lng`` parameter)."""

    ENGLISH = "en", "English"
    CHINESE_SIMPLIFIED = "zh", "Chinese (Simplified)"
    CHINESE_TRADITIONAL = "zh-Hant", "Chinese (Traditional)"


class Person(models.Model):
    """A real person ("talent") whose likeness the studio may use."""

    legal_name = models.CharField(max_length=200)
    display_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    preferred_language = models.CharField(
        max_length=8,
        choices=Language.choices,
        default=Language.ENGLISH,
        help_text="Language of the verification pages the person sees.",
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["legal_name", "pk"]
        verbose_name_plural = "people"
        constraints = [
            models.CheckConstraint(
                condition=Q(preferred_language__in=Language.values), name="person_language_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.display_name or self.legal_name


def consent_document_path(record: ConsentRecord, filename: str) -> str:
    # A random folder keeps document names unguessable even in storage listings.
    return f"consent/{record.person_id}/{secrets.token_hex(8)}/{filename}"


class ConsentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PENDING_REVIEW = "pending_review", "Pending review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


# Each asset kind (an ``Asset.Kind`` value) and the field that says whether a consent covers it.
COVERS_FIELDS = {"image": "covers_images", "video": "covers_video", "audio": "covers_audio"}


class ConsentRecordQuerySet(models.QuerySet["ConsentRecord"]):
    def in_force(self, on: datetime.date | None = None) -> ConsentRecordQuerySet:
        """Approved and within its dates on ``on`` (today by default): starts_on <= on <=
        expires_on, or no end. The one rule for "a consent in force"."""
        day = on or timezone.localdate()
        return self.filter(status=ConsentStatus.APPROVED, starts_on__lte=day).filter(
            Q(expires_on__isnull=True) | Q(expires_on__gte=day)
        )

    def covering(self, kind: str) -> ConsentRecordQuerySet:
        """Those that cover the asset kind ``kind`` (``image``, ``video`` or ``audio``)."""
        return self.filter(**{COVERS_FIELDS[kind]: True})


class CaptureMethod(models.TextChoices):
    IN_PERSON = "in_person", "In person (paper form)"
    E_SIGNATURE = "e_signature", "Electronic signature"
    RECORDED_VIDEO = "recorded_video", "Recorded video statement"
    AGENT = "agent", "Through the person's agent"


class ConsentRecord(models.Model):
    """What a person agreed to, for which uses, where and until when, and its review."""

    Status = ConsentStatus
    CaptureMethod = CaptureMethod

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="consent_records")
    consent_text_version = models.CharField(
        max_length=50, help_text="Version of the consent text the person agreed to."
    )
    intended_uses = models.TextField(help_text="What the likeness may be used for.")
    projects = models.TextField(blank=True, help_text="Projects covered; empty means any project.")
    covers_images = models.BooleanField(default=True)
    covers_video = models.BooleanField(default=True)
    covers_audio = models.BooleanField(default=False)
    territory = models.CharField(max_length=200, default="Worldwide")
    starts_on = models.DateField()
    expires_on = models.DateField(null=True, blank=True, help_text="Empty means no end date.")
    capture_method = models.CharField(max_length=20, choices=CaptureMethod.choices)
    signed_document = models.FileField(upload_to=consent_document_path, blank=True, max_length=300)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ConsentStatus.values), name="consent_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(capture_method__in=CaptureMethod.values),
                name="consent_capture_method_valid",
            ),
            models.CheckConstraint(
                condition=Q(expires_on__isnull=True) | Q(expires_on__gte=models.F("starts_on")),
                name="consent_expires_after_start",
            ),
            models.CheckConstraint(
                condition=Q(covers_images=True) | Q(covers_video=True) | Q(covers_audio=True),
                name="consent_covers_some_media",
            ),
            models.CheckConstraint(
                condition=~Q(status="revoked") | Q(revoked_at__isnull=False),
                name="consent_revoked_has_time",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["approved", "rejected"]) | Q(reviewed_at__isnull=False),
                name="consent_reviewed_has_time",
            ),
        ]

    def __str__(self) -> str:
        status = self.get_status_display()
        return f"Consent v{self.consent_text_version} of {self.person} ({status})"

    def media_types(self) -> list[str]:
        """The asset kinds this consent covers, as ``Asset.Kind`` values."""
        return [kind for kind, field in COVERS_FIELDS.items() if getattr(self, field)]


def new_invitation_token() -> str:
    return secrets.token_urlsafe(32)


class VerificationSessionQuerySet(models.QuerySet["VerificationSession"]):
    def open(self) -> VerificationSessionQuerySet:
        return self.filter(status__in=OPEN_VERIFICATION_STATUSES)


class VerificationStatus(models.TextChoices):
    INVITED = "invited", "Invited"
    LINK_ISSUED = "link_issued", "Verification link issued"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


# Sessions that still wait for the person: a person has at most one (a constraint below).
OPEN_VERIFICATION_STATUSES = [VerificationStatus.INVITED, VerificationStatus.LINK_ISSUED]


class VerificationSession(models.Model):
    """One invitation of a person to real-person verification, and its upstream session.

    The portal's own invitation token goes into the link the person receives; the upstream
    session (BytedToken and its single-use, short-lived H5 link) is minted only when the person
    actually opens that link.
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
    )
    invitation_token = models.CharField(
        max_length=64, unique=True, default=new_invitation_token, editable=False
    )
    byted_token = models.CharField(max_length=64, unique=True, null=True, blank=True)
    h5_link = models.URLField(max_length=2000, blank=True)
    h5_link_expires_at = models.DateTimeField(null=True, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INVITED)
    callback_params = models.JSONField(default=dict, blank=True)
    api_key_fingerprint = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    objects = VerificationSessionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=VerificationStatus.values), name="verification_status_valid"
            ),
            models.UniqueConstraint(
                fields=["person"],
                condition=Q(status__in=OPEN_VERIFICATION_STATUSES),
                name="one_open_verification_per_person",
                violation_error_message="This person already has an open verification session.",
            ),
        ]

    def __str__(self) -> str:
        return f"Verification of {self.person} ({self.get_status_display()})"

    def clean(self) -> None:
        consent = self.consent
        if consent is not None and self.person_id and consent.person_id != self.person_id:
            raise ValidationError({"consent": "This consent record is another person's."})
