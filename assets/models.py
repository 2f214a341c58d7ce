"""Verified asset groups and the likeness assets registered in them."""

from __future__ import annotations

import datetime
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from assets.media import MediaInfo
from consent.models import COVERS_FIELDS, ConsentRecord
from portal.private_files import name_mismatch, stored_extension


class GroupType(models.TextChoices):
    LIVENESS_FACE = "LivenessFace", "LivenessFace (verified real person)"
    AIGC = "AIGC", "AIGC"


class GroupStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    WITHDRAWN = "withdrawn", "Withdrawn"


class AssetGroup(models.Model):
    """An upstream asset group; for real people, the ``LivenessFace`` group verification made."""

    GroupType = GroupType

    Status = GroupStatus

    group_id = models.CharField("upstream GroupId", max_length=64, unique=True)
    group_type = models.CharField(
        max_length=20, choices=GroupType.choices, default=GroupType.LIVENESS_FACE
    )
    person = models.ForeignKey(
        "consent.Person", on_delete=models.PROTECT, related_name="asset_groups"
    )
    # The upstream session whose GetVisualValidateResult gave this GroupId (not the invitation:
    # an invitation may hold several upstream sessions, and exactly one of them made the group).
    upstream_verification = models.OneToOneField(
        "consent.UpstreamVerification",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="asset_group",
        help_text="The upstream verification session that created this group.",
    )
    api_key_fingerprint = models.CharField(
        max_length=32,
        blank=True,
        help_text="Fingerprint of the API key that owns the group upstream (never the key).",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=GroupStatus.values), name="asset_group_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(group_type__in=GroupType.values), name="asset_group_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.group_id

    def is_verified_liveness(self) -> bool:
        """Whether a completed real-person verification made this group.

        The one rule for "a real person's files may go here": a LivenessFace group linked to the
        verification that created it. A group typed in by hand has no such link, and AIGC groups
        are never for real people.
        """
        return (
            self.group_type == GroupType.LIVENESS_FACE and self.upstream_verification_id is not None
        )

    def clean(self) -> None:
        session = self.upstream_verification
        if (
            session is not None
            and self.person_id
            and session.invitation.person_id != self.person_id
        ):
            raise ValidationError(
                {"upstream_verification": "This verification session is another person's."}
            )


def asset_file_path(asset: Asset, filename: str) -> str:
    """A random storage name whose extension is that of the type measured from the bytes.

    Uploaded names often carry the person's name, and the storage name travels in the signed
    link the upstream downloads from: ``original_filename`` keeps it for staff instead. The
    uploaded extension is ignored: a JPEG named ``evil.html`` is stored as ``.jpg``.
    """
    return f"assets/{asset.kind}/{secrets.token_hex(16)}{stored_extension(asset.content_type)}"


def new_upstream_name() -> str:
    """A unique upstream ``Name``, fixed when the row is created.

    The upstream answers a duplicate Name in a group with a misleading ``NotFound.group_id``; a
    Name that is unique per row, and stable across retries, also lets a retried upload find the
    asset it already created (ListAssets by Name) instead of creating a twin.
    """
    return f"tcp-{uuid.uuid4().hex}"


class AssetQuerySet(models.QuerySet["Asset"]):
    def active(self) -> AssetQuerySet:
        return self.filter(status=Asset.Status.ACTIVE)

    def usable_by_producers(self, on: datetime.date | None = None) -> AssetQuerySet:
        """Active assets whose consent is in force on ``on`` (today) and covers their kind.

        What producers may reference: an asset leaves this set the day its consent ends or is
        revoked, or when its group is withdrawn.
        """
        covered = Q()
        for kind, field in COVERS_FIELDS.items():
            covered |= Q(kind=kind, **{f"consent__{field}": True})
        return (
            self.active()
            .filter(group__status=GroupStatus.ACTIVE)
            .filter(consent__in=ConsentRecord.objects.in_force(on))
            .filter(covered)
        )

    def due_for_submit(self, now: datetime.datetime) -> AssetQuerySet:
        """Queued assets whose next attempt is due."""
        return self.filter(status=Asset.Status.QUEUED, next_attempt_at__lte=now)

    def upload_lease_expired(self, now: datetime.datetime) -> AssetQuerySet:
        """Assets left ``uploading`` past their lease: their worker died or lost the row."""
        return self.filter(status=Asset.Status.UPLOADING, next_attempt_at__lt=now)

    def due_for_poll(self, now: datetime.datetime) -> AssetQuerySet:
        """Assets processing upstream whose next status check is due."""
        return self.filter(status=Asset.Status.PROCESSING, next_attempt_at__lte=now)


class AssetKind(models.TextChoices):
    IMAGE = "image", "Image"
    VIDEO = "video", "Video"
    AUDIO = "audio", "Audio"


class AssetStatus(models.TextChoices):
    REJECTED = "rejected", "Rejected locally"
    QUEUED = "queued", "Queued"
    UPLOADING = "uploading", "Uploading"
    PROCESSING = "processing", "Processing upstream"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed upstream"
    WITHDRAWN = "withdrawn", "Withdrawn"


class Asset(models.Model):
    """A portrait image, video or audio clip of a verified person, and its upstream life."""

    Kind = AssetKind

    Status = AssetStatus

    group = models.ForeignKey(AssetGroup, on_delete=models.PROTECT, related_name="assets")
    # Empty only on rows made before uploads were gated by consent; every upload sets it.
    consent = models.ForeignKey(
        "consent.ConsentRecord",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assets",
        help_text="The consent that authorises this asset.",
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    file = models.FileField(upload_to=asset_file_path, max_length=300)
    # What the upstream downloads when present: a copy without location metadata (EXIF GPS…);
    # the original keeps its bytes and hash.
    upstream_copy = models.FileField(
        upload_to=asset_file_path, max_length=300, blank=True, editable=False
    )
    original_filename = models.CharField(max_length=255, blank=True)
    precheck_warnings = models.JSONField(
        "local pre-check warnings",
        default=list,
        blank=True,
        editable=False,
        help_text="What the local face pre-check noticed (a hint; the upstream decides).",
    )
    sha256 = models.CharField("SHA-256", max_length=64)
    size_bytes = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    fps = models.FloatField("frames per second", null=True, blank=True)
    upstream_name = models.CharField(
        max_length=64, unique=True, default=new_upstream_name, editable=False
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # NULL until CreateAsset answers: unique, and many rows may still be waiting for an Id.
    upstream_id = models.CharField(
        "upstream asset Id", max_length=64, unique=True, null=True, blank=True
    )
    # The last error, upstream or local: kept while an attempt is retried, shown when it failed.
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    error_explanation = models.TextField(
        blank=True, help_text="What the error means and what to do about it."
    )
    attempts = models.PositiveIntegerField(default=0, help_text="Upload attempts claimed so far.")
    # Queued: when the next upload attempt is due. Uploading: when the claiming worker's lease
    # runs out (the sweeper then queues the row again). Processing: when to check it next.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the upstream accepted the upload (gave its Id)."
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AssetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        # Viewing an asset's row (its state, measurements and reference) is not seeing the person:
        # the original file takes a permission of its own (producers see rows, never files).
        permissions = [("view_asset_file", "Can open the original file of an asset")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=AssetStatus.values), name="asset_status_valid"
            ),
            models.CheckConstraint(condition=Q(kind__in=AssetKind.values), name="asset_kind_valid"),
            models.CheckConstraint(
                condition=~Q(status="active") | Q(upstream_id__isnull=False),
                name="asset_active_has_upstream_id",
            ),
            models.CheckConstraint(
                condition=~Q(status="processing") | Q(upstream_id__isnull=False),
                name="asset_processing_has_upstream_id",
            ),
            models.UniqueConstraint(
                fields=["group", "sha256"],
                condition=~Q(status__in=["rejected", "failed", "withdrawn"]),
                name="asset_file_once_per_group",
                violation_error_message="This file is already registered in this group.",
            ),
        ]
        indexes = [
            # The sweeper's queries: rows of one status whose next attempt is due.
            models.Index(fields=["status", "next_attempt_at"], name="asset_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.original_filename or self.upstream_name}"

    def clean(self) -> None:
        # A withdrawn group's person revoked consent or lost verification: nothing more goes in.
        if self._state.adding and self.group_id and self.group.status != GroupStatus.ACTIVE:
            raise ValidationError(
                {"group": "This asset group is withdrawn: it takes no new files."}
            )
        consent = self.consent
        if consent is not None and self.group_id and consent.person_id != self.group.person_id:
            raise ValidationError({"consent": "This consent record is another person's."})
        # The stored name follows the bytes anyway; a contradicting name means a mix-up to fix.
        if self._state.adding and (
            mismatch := name_mismatch(self.original_filename, self.content_type)
        ):
            raise ValidationError({"file": mismatch})

    def record_measurements(self, info: MediaInfo, *, original_filename: str) -> None:
        """Fill in what was read from the file's bytes (kind, hash, size, dimensions, timing)."""
        self.kind = info.kind
        self.original_filename = original_filename
        self.sha256 = info.sha256
        self.size_bytes = info.size_bytes
        self.content_type = info.content_type
        self.width = info.width
        self.height = info.height
        self.duration_seconds = info.duration_seconds
        self.fps = info.fps

    @property
    def upstream_file(self) -> models.fields.files.FieldFile:
        """The file the upstream downloads: the location-stripped copy when there is one."""
        return self.upstream_copy if self.upstream_copy else self.file

    @property
    def asset_uri(self) -> str:
        """The ``asset://<Id>`` reference producers paste into Seedance 2.0 requests."""
        return f"asset://{self.upstream_id}" if self.upstream_id else ""
