"""People, the consent they gave, their invitations to verification and its upstream sessions."""

from __future__ import annotations

import datetime
import hashlib
import posixpath
import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consent.documents import document_content_type, validate_consent_document
from mail.models import emails_about
from portal.constraints import FieldCheckConstraint
from portal.private_files import stored_extension


class Language(models.TextChoices):
    """Languages of the upstream verification page (its ``lng`` parameter)."""

    ENGLISH = "en", "English"
    CHINESE_SIMPLIFIED = "zh", "Chinese (Simplified)"
    CHINESE_TRADITIONAL = "zh-Hant", "Chinese (Traditional)"


DJANGO_LANGUAGES = {
    Language.ENGLISH: "en",
    Language.CHINESE_SIMPLIFIED: "zh-hans",
    Language.CHINESE_TRADITIONAL: "zh-hant",
}


def django_language(upstream_language: str) -> str:
    """The Django language code (``settings.LANGUAGES``) of a ``Language`` value."""
    return DJANGO_LANGUAGES.get(upstream_language, "en")  # type: ignore[call-overload]


def upstream_language(django_code: str) -> str:
    """The ``Language`` value (the H5 page's ``lng``) of a Django language code."""
    for language, code in DJANGO_LANGUAGES.items():
        if code == django_code.lower():
            return str(language)
    return str(Language.ENGLISH)


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
    legal_hold = models.BooleanField(
        default=False,
        help_text="Keep this person's biometric media past the retention period (litigation, "
        "an investigation). Placed and lifted by legal, with a reason.",
    )
    legal_hold_note = models.TextField(blank=True, help_text="Why the hold was placed or lifted.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["legal_name", "pk"]
        indexes = [
            models.Index(fields=["legal_name", "id"], name="person_by_legal_name"),
        ]
        verbose_name_plural = "people"
        permissions = [
            ("legal_hold_person", "Can place or lift a legal hold on a person's biometric data"),
            ("export_evidence", "Can export a person's evidence bundle"),
        ]
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
    """The uploaded name's stem with the extension of the type read from the document's bytes.

    A random folder keeps document names unguessable even in storage listings. A document of no
    accepted type (only possible where ``validate_consent_document`` did not run) gets no
    extension, so it is only ever served as ``application/octet-stream``; so does one saved with
    ``signed_document.save(name, content)``, whose content this function cannot see.
    """
    document = record.signed_document
    # A document assigned to the field (forms, create()) is still the content being saved.
    pending = bool(document) and not getattr(document, "_committed", True)
    content_type = document_content_type(document) if pending else None
    stem = posixpath.splitext(posixpath.basename(filename))[0] or "consent"
    extension = stored_extension(content_type) if content_type else ""
    return f"consent/{record.person_id}/{secrets.token_hex(8)}/{stem}{extension}"


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
    ONLINE = "online", "By the person, online (their own page)"


# Each asset kind (an ``Asset.Kind`` value) and the field that says whether a consent covers it.
COVERS_FIELDS = {"image": "covers_images", "video": "covers_video", "audio": "covers_audio"}


class TemplateNotice(models.TextChoices):
    """Notices a consent text may contain; each one the person confirms when signing."""

    BIOMETRIC = "biometric", _("Biometric data notice (BIPA, GDPR Art. 9)")
    RETENTION = "retention", _("Retention and destruction policy")


class TemplateField(models.TextChoices):
    """What a consent text needs of the person when signing, beyond their typed legal name."""

    DRAWN_SIGNATURE = "drawn_signature", "A drawn signature"


def consent_text_sha256(text: str) -> str:
    """SHA-256 (hex) of the exact UTF-8 bytes of a consent text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ConsentTemplate(models.Model):
    """A consent text legal maintains (e.g. "Likeness release"), in versions and languages."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True, help_text="What it is for (staff only).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TemplateVersionFrozen(Exception):
    """A published consent text version was about to change (or be deleted)."""


class ConsentTemplateVersion(models.Model):
    """One version of a consent text in one language: the exact words a person agrees to.

    Written while unpublished; ``consent.template_versions.template_version_publish`` freezes it
    (``published_at``) and from then on it never changes nor goes away (``save``/``delete`` here,
    a trigger in the database). ``sha256`` is the portal's, of the exact text bytes.
    """

    template = models.ForeignKey(ConsentTemplate, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=50, help_text="E.g. 2026-12 or 3.1.")
    language = models.CharField(max_length=8, choices=Language.choices, default=Language.ENGLISH)
    text = models.TextField(help_text="The exact text the person reads and agrees to.")
    notices = models.JSONField(
        default=list, blank=True, help_text="The notices the text contains, each confirmed."
    )
    required_fields = models.JSONField(
        default=list, blank=True, help_text="What the person gives when signing, beyond the name."
    )
    sha256 = models.CharField("SHA-256", max_length=64, editable=False)
    published_at = models.DateTimeField(null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        editable=False,
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["template__name", "-created_at", "language"]
        permissions = [("publish_consenttemplateversion", "Can publish consent text versions")]
        constraints = [
            models.UniqueConstraint(
                fields=["template", "version", "language"],
                name="consent_template_version_unique",
                violation_error_message=(
                    "This consent text already has this version in this language: give the new "
                    "text a new version."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} v{self.version} ({self.language})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._refuse_if_published()
        self.text = self.text.replace("\r\n", "\n").replace("\r", "\n")
        self.sha256 = consent_text_sha256(self.text)
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        self._refuse_if_published()
        return super().delete(*args, **kwargs)

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def _refuse_if_published(self) -> None:
        if self.pk is None:
            return
        stored = type(self).objects.filter(pk=self.pk).values_list("published_at", flat=True)
        if stored.first() is not None:
            raise TemplateVersionFrozen(
                f"{self} is published: it never changes. Write a new version instead."
            )


class ConsentRecordQuerySet(models.QuerySet["ConsentRecord"]):
    def in_force(self, on: datetime.date | None = None) -> ConsentRecordQuerySet:
        """Approved records whose period includes ``on`` (today by default)."""
        day = on or timezone.localdate()
        return self.filter(status=ConsentStatus.APPROVED, starts_on__lte=day).filter(
            Q(expires_on__isnull=True) | Q(expires_on__gte=day)
        )

    def backing_verification(self, on: datetime.date | None = None) -> ConsentRecordQuerySet:
        """Those a verification may go ahead on: in force, or signed electronically by the
        person and waiting for legal's review (the signature is BIPA's written release; uploads
        and references still wait for approval, ``in_force``)."""
        day = on or timezone.localdate()
        signed = self.filter(
            status=ConsentStatus.PENDING_REVIEW, signature__isnull=False, starts_on__lte=day
        ).filter(Q(expires_on__isnull=True) | Q(expires_on__gte=day))
        return self.in_force(on) | signed

    def covering(self, kind: str) -> ConsentRecordQuerySet:
        """Those that cover the asset kind ``kind`` (``image``, ``video`` or ``audio``)."""
        return self.filter(**{COVERS_FIELDS[kind]: True})


class ConsentRecord(models.Model):
    """What a person agreed to, for which uses, where and until when, and its review.

    A record is edited only while it is a draft. Once submitted it changes only through the
    services in ``consent.services`` (status and review fields, by conditional updates); a change
    of substance is a new version that ``supersedes`` it and goes through its own review.
    """

    Status = ConsentStatus
    # Written by the lifecycle's services, never by hand: shown read-only, never copied into a
    # new version (which starts its own review, revocation and warnings). Each is written by the
    # transitions named (actions of ``consent.services.CONSENT_TRANSITIONS``) and by nothing else,
    # so once; ``expiry_warning_sent_at`` by none: it is set once, from empty, while approved.
    # The database enforces this for every client (migration ``consent_lifecycle_in_database``).
    LIFECYCLE_WRITTEN_BY: dict[str, tuple[str, ...]] = {
        "submitted_by": ("submit",),
        "submitted_at": ("submit",),
        "reviewed_by": ("approve", "reject"),
        "reviewed_at": ("approve", "reject"),
        "review_note": ("approve", "reject"),
        "revoked_at": ("revoke",),
        "revoked_by": ("revoke",),
        "revocation_channel": ("revoke",),
        "revocation_requested_at": ("revoke",),
        "revocation_reason": ("revoke",),
        "ended_at": ("revoke", "expire", "supersede"),
        "expiry_warning_sent_at": (),
    }
    LIFECYCLE_FIELDS = tuple(LIFECYCLE_WRITTEN_BY)
    CaptureMethod = CaptureMethod
    Representation = Representation
    RevocationChannel = RevocationChannel

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="consent_records")
    template_version = models.ForeignKey(
        ConsentTemplateVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="consent_records",
        limit_choices_to={"published_at__isnull": False},
        help_text="The published consent text: its version, language and SHA-256 are taken "
        "from it.",
    )
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
    signed_document = models.FileField(
        upload_to=consent_document_path,
        validators=[validate_consent_document],
        blank=True,
        max_length=300,
    )
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
    # Not a term: written once, from empty, while approved (see ``LIFECYCLE_WRITTEN_BY``).
    expiry_warning_sent_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the person and staff were warned that it ends soon.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    emails = emails_about()
    objects = ConsentRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="consent_record_newest_first"),
            # The queues on the admin home: awaiting review (a status), ending soon (approved,
            # by end date); counted from the index, not by reading every record.
            models.Index(fields=["status", "expires_on"], name="consent_record_by_status"),
        ]
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
        self.apply_template_version()
        super().save(*args, **kwargs)

    def apply_template_version(self) -> None:
        """A draft that picked a template version takes its version, language and hash."""
        version = self.template_version
        if version is not None:
            self.consent_text_version = version.version
            self.consent_text_language = version.language
            self.consent_text_sha256 = version.sha256

    @property
    def awaiting_signature(self) -> bool:
        """A draft to be signed electronically by the person (on their invitation page)."""
        return (
            self.status == ConsentStatus.DRAFT
            and self.capture_method == CaptureMethod.E_SIGNATURE
            and self.template_version is not None
            and self.template_version.is_published
            and not self.signed_document
        )

    def is_in_force(self, on: datetime.date | None = None) -> bool:
        """Whether ``ConsentRecord.objects.in_force(on)`` holds this row (same rule)."""
        day = on or timezone.localdate()
        return (
            self.status == ConsentStatus.APPROVED
            and self.starts_on <= day
            and (self.expires_on is None or self.expires_on >= day)
        )

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
        return [kind for kind, field in COVERS_FIELDS.items() if getattr(self, field)]


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
        # The references page's projects, one by one (``assets.references.projects_of``).
        indexes = [models.Index(fields=["project", "consent"], name="consent_use_by_project")]

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


# --- The person's own link (/me/<token>/) -------------------------------------------------------


def personal_token_digest(token: str) -> str:
    """The SHA-256 a ``PersonalLink`` keeps of its token (the token itself is never stored)."""
    return hashlib.sha256(token.encode()).hexdigest()


class PersonalLinkQuerySet(models.QuerySet["PersonalLink"]):
    def usable(self, now: datetime.datetime | None = None) -> PersonalLinkQuerySet:
        """Links neither revoked nor expired."""
        return self.filter(revoked_at__isnull=True, expires_at__gt=now or timezone.now())


class PersonalLink(models.Model):
    """A person's own link to their page (``/me/<token>/``): no login, expiring, revocable.

    The token is random and handed out once (in an email); the row keeps only its SHA-256, so
    neither the database nor its backups open anyone's page. ``personal_link_issue`` makes one.
    """

    person = models.ForeignKey(Person, on_delete=models.PROTECT, related_name="personal_links")
    token_sha256 = models.CharField("token SHA-256", max_length=64, unique=True, editable=False)
    sent_for = models.CharField(
        max_length=40, help_text="The email that carried it (invitation, link request...)."
    )
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PersonalLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        # The changelist's default order (issue 16)
        indexes = [models.Index(fields=["-created_at", "-id"], name="personal_link_newest_first")]

    def __str__(self) -> str:
        return f"Personal link #{self.pk} of {self.person} ({self.sent_for})"


def personal_link_issue(*, person: Person, sent_for: str) -> str:
    """A new personal link of ``person`` (``PERSONAL_LINK_TTL_DAYS``): its absolute URL.

    For every email the person receives (invitation, expiry warning, confirmations): the caller
    puts the URL in the email's context; only the email holds the token. Runs in the caller's
    transaction.
    """
    token = secrets.token_urlsafe(32)
    PersonalLink.objects.create(
        person=person,
        token_sha256=personal_token_digest(token),
        sent_for=sent_for[:40],
        expires_at=timezone.now() + datetime.timedelta(days=settings.PERSONAL_LINK_TTL_DAYS),
    )
    return settings.PORTAL_PUBLIC_URL + reverse("me:page", args=[token])


class ConsentSignature(models.Model):
    """The evidence of an electronic signature: who signed what, when, from where.

    Written once, when the person signs on their invitation page (``consent.esign``); it never
    changes. ``text_sha256`` is the template version's hash as shown, ``terms_sha256`` that of
    the terms shown beside it, ``document_sha256`` that of the signed PDF rendered from both.
    """

    consent = models.OneToOneField(
        ConsentRecord, on_delete=models.PROTECT, related_name="signature"
    )
    template_version = models.ForeignKey(
        ConsentTemplateVersion, on_delete=models.PROTECT, related_name="+"
    )
    invitation = models.ForeignKey(
        "verification.VerificationSession", on_delete=models.PROTECT, related_name="+"
    )
    signed_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    typed_name = models.CharField(max_length=200)
    drawn_signature = models.TextField(
        blank=True, help_text="The drawn signature, as a PNG data URL (when drawn)."
    )
    notices_confirmed = models.JSONField(default=list)
    text_sha256 = models.CharField(max_length=64)
    terms_sha256 = models.CharField(max_length=64)
    document_sha256 = models.CharField(max_length=64)
    receipt = models.JSONField(help_text="The consent receipt (ISO/IEC 27560, Kantara fields).")

    class Meta:
        ordering = ["-signed_at", "-pk"]
        # The changelist's default order (issue 16)
        indexes = [models.Index(fields=["-signed_at", "-id"], name="signature_newest_first")]

    def __str__(self) -> str:
        return f"Signature of {self.typed_name} ({self.signed_at:%Y-%m-%d %H:%M})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ConsentRecordLocked("An electronic signature's evidence never changes.")
        super().save(*args, **kwargs)
