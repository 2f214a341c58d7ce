"""People, the consent they gave, and their real-person verification sessions."""

from __future__ import annotations

import datetime
import secrets
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from portal.constraints import FieldCheckConstraint


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
            FieldCheckConstraint(
                condition=Q(preferred_language__in=Language.values),
                name="person_language_valid",
                field="preferred_language",
                violation_error_message="Choose one of the verification page's languages.",
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
    SUPERSEDED = "superseded", "Superseded by a newer version"


class CaptureMethod(models.TextChoices):
    IN_PERSON = "in_person", "In person (paper form)"
    E_SIGNATURE = "e_signature", "Electronic signature"
    RECORDED_VIDEO = "recorded_video", "Recorded video statement"
    AGENT = "agent", "Through the person's agent"


class Representation(models.TextChoices):
    NONE = "none", "Not represented"
    COUNSEL = "counsel", "Legal counsel"
    UNION = "union", "Labour union (e.g. SAG-AFTRA)"
    AGENT = "agent", "Agent"


class RevocationChannel(models.TextChoices):
    IN_WRITING = "in_writing", "In writing (letter or signed form)"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone call"
    IN_PERSON = "in_person", "In person"
    AGENT = "agent", "Through the person's agent or counsel"


class ConsentRecordQuerySet(models.QuerySet["ConsentRecord"]):
    def in_force(self, on: datetime.date | None = None) -> ConsentRecordQuerySet:
        """Approved records whose period includes ``on`` (today by default)."""
        day = on or timezone.localdate()
        return self.filter(status=ConsentStatus.APPROVED, starts_on__lte=day).filter(
            Q(expires_on__isnull=True) | Q(expires_on__gte=day)
        )


class ConsentRecord(models.Model):
    """What a person agreed to, for which uses, where and until when, and its review.

    A record is edited only while it is a draft. Once submitted it changes only through the
    services in ``consent.services`` (status and review fields, by conditional updates); a change
    of substance is a new version that ``supersedes`` it and goes through its own review.
    """

    Status = ConsentStatus
    CaptureMethod = CaptureMethod
    Representation = Representation
    RevocationChannel = RevocationChannel

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
    # What of the person, and what may be done with it.
    likeness_face = models.BooleanField("face", default=True)
    likeness_body = models.BooleanField("body", default=False)
    likeness_voice = models.BooleanField("voice", default=False)
    permitted_alterations = models.TextField(
        blank=True, help_text="Alterations allowed to the likeness (age, wardrobe, language...)."
    )
    prohibited_uses = models.TextField(
        blank=True, help_text="Uses the person excluded (political, adult, endorsements...)."
    )
    allows_model_training = models.BooleanField(
        "allows model training",
        default=False,
        help_text="A separate opt-in: may the likeness be used to train or fine-tune models?",
    )
    compensation_reference = models.CharField(
        max_length=200, blank=True, help_text="Contract or payment reference for this consent."
    )
    consent_text_sha256 = models.CharField(
        "consent text SHA-256",
        max_length=64,
        blank=True,
        help_text="SHA-256 of the exact consent text shown to the person.",
    )
    consent_text_language = models.CharField(
        max_length=8, choices=Language.choices, default=Language.ENGLISH
    )
    representation = models.CharField(
        max_length=20, choices=Representation.choices, default=Representation.NONE
    )
    representative_name = models.CharField(max_length=200, blank=True)
    is_minor = models.BooleanField("the person is a minor", default=False)
    guardian_name = models.CharField(max_length=200, blank=True)
    guardian_relationship = models.CharField(max_length=100, blank=True)
    biometric_notice_accepted = models.BooleanField(
        default=False,
        help_text="The person received the biometric data notice (BIPA, GDPR Art. 9).",
    )
    retention_policy_accepted = models.BooleanField(
        default=False, help_text="The person received the retention and destruction policy."
    )
    supersedes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="superseded_by",
        help_text="The earlier version this record replaces once approved.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_note = models.TextField(blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    revocation_channel = models.CharField(
        max_length=20, choices=RevocationChannel.choices, blank=True
    )
    revocation_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When the person withdrew consent (may precede recording)."
    )
    revocation_reason = models.TextField(blank=True)
    ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When the record stopped being in force (any reason)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        permissions = [
            ("review_consentrecord", "Can approve or reject consent records"),
            ("revoke_consentrecord", "Can record that a person revoked consent"),
        ]
        constraints = [
            FieldCheckConstraint(
                condition=Q(status__in=ConsentStatus.values),
                name="consent_status_valid",
                field="status",
                violation_error_message="This is not a status a consent record can have.",
            ),
            FieldCheckConstraint(
                condition=Q(capture_method__in=CaptureMethod.values),
                name="consent_capture_method_valid",
                field="capture_method",
                violation_error_message="Choose how the consent was captured.",
            ),
            FieldCheckConstraint(
                condition=Q(expires_on__isnull=True) | Q(expires_on__gte=models.F("starts_on")),
                name="consent_expires_after_start",
                field="expires_on",
                violation_error_message=(
                    "The consent cannot end before it starts: choose an end date on or after "
                    "the start date, or leave it empty for no end date."
                ),
            ),
            FieldCheckConstraint(
                condition=Q(covers_images=True) | Q(covers_video=True) | Q(covers_audio=True),
                name="consent_covers_some_media",
                field="covers_images",
                violation_error_message=(
                    "Tick at least one kind of media the consent covers: images, video or audio."
                ),
            ),
            FieldCheckConstraint(
                condition=~Q(status="revoked") | Q(revoked_at__isnull=False),
                name="consent_revoked_has_time",
                field="revoked_at",
                violation_error_message="A revoked consent needs the time it was revoked.",
            ),
            FieldCheckConstraint(
                condition=~Q(status__in=["approved", "rejected"]) | Q(reviewed_at__isnull=False),
                name="consent_reviewed_has_time",
                field="reviewed_at",
                violation_error_message=(
                    "An approved or rejected consent needs the time it was reviewed."
                ),
            ),
        ]

    def __str__(self) -> str:
        status = self.get_status_display()
        return f"Consent v{self.consent_text_version} of {self.person} ({status})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored is not None and stored != ConsentStatus.DRAFT:
                raise ConsentRecordLocked(
                    f"{self} is {ConsentStatus(stored).label.lower()}: it never changes. "
                    "Make a new version instead."
                )
        super().save(*args, **kwargs)

    @property
    def is_editable(self) -> bool:
        """Only a draft is edited; anything later is evidence (see the class docstring)."""
        return self.status == ConsentStatus.DRAFT

    def likeness_elements(self) -> list[str]:
        covered = [
            ("face", self.likeness_face),
            ("body", self.likeness_body),
            ("voice", self.likeness_voice),
        ]
        return [element for element, covers in covered if covers]

    def media_types(self) -> list[str]:
        """The asset kinds this consent covers, as ``Asset.Kind`` values."""
        covered = [
            ("image", self.covers_images),
            ("video", self.covers_video),
            ("audio", self.covers_audio),
        ]
        return [kind for kind, covers in covered if covers]


class ConsentRecordLocked(Exception):
    """A submitted consent record, or one of its uses, was about to be changed."""


class ConsentUse(models.Model):
    """One specific intended use a consent covers: what, where, through which channels."""

    consent = models.ForeignKey(ConsentRecord, on_delete=models.PROTECT, related_name="uses")
    project = models.CharField(max_length=200)
    medium = models.CharField(
        max_length=200, help_text="E.g. AI-generated video advertisement, 30 s."
    )
    channels = models.CharField(
        max_length=300, help_text="Where it appears: TV, YouTube, Instagram, cinema..."
    )
    territory = models.CharField(max_length=200)
    languages = models.CharField(max_length=200)
    description = models.TextField(help_text="What the likeness will be shown doing, specifically.")

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.project}: {self.medium} ({self.channels}; {self.territory})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._refuse_unless_draft()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        self._refuse_unless_draft()
        return super().delete(*args, **kwargs)

    def _refuse_unless_draft(self) -> None:
        status = ConsentRecord.objects.filter(pk=self.consent_id).values_list("status", flat=True)
        if status.first() not in (None, ConsentStatus.DRAFT):
            raise ConsentRecordLocked("The uses of a submitted consent record never change.")


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
ONE_OPEN_SESSION = "one_open_verification_per_person"


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
            FieldCheckConstraint(
                condition=Q(status__in=VerificationStatus.values),
                name="verification_status_valid",
                field="status",
                violation_error_message="This is not a status a verification session can have.",
            ),
            models.UniqueConstraint(
                fields=["person"],
                condition=Q(status__in=OPEN_VERIFICATION_STATUSES),
                name=ONE_OPEN_SESSION,
                violation_error_message=(
                    "This person already has an open verification session: complete or cancel "
                    "it first."
                ),
                # Shown on the person field (Django puts "unique" errors of one field there).
                violation_error_code="unique",
            ),
        ]

    def __str__(self) -> str:
        return f"Verification of {self.person} ({self.get_status_display()})"

    def clean(self) -> None:
        consent = self.consent
        if consent is not None and self.person_id and consent.person_id != self.person_id:
            raise ValidationError({"consent": "This consent record is another person's."})
        # Staff never type a status, so model forms leave it out of validation, and Django then
        # skips the one-open-session rule, whose condition reads it: check the rule here with the
        # status the row will be saved with, before the database refuses it.
        if self.person_id:
            [rule] = [c for c in self._meta.constraints if c.name == ONE_OPEN_SESSION]
            try:
                rule.validate(type(self), self)
            except ValidationError as violation:
                raise ValidationError({"person": violation}) from violation
