"""Verified asset groups and the likeness assets registered in them."""

from __future__ import annotations

import os
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from assets.media import MediaInfo
from portal.constraints import FieldCheckConstraint


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
    verification_session = models.OneToOneField(
        "consent.VerificationSession",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="asset_group",
        help_text="The verification session that created this group.",
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
            FieldCheckConstraint(
                condition=Q(status__in=GroupStatus.values),
                name="asset_group_status_valid",
                field="status",
                violation_error_message="This is not a status an asset group can have.",
            ),
            FieldCheckConstraint(
                condition=Q(group_type__in=GroupType.values),
                name="asset_group_type_valid",
                field="group_type",
                violation_error_message="An asset group is either LivenessFace or AIGC.",
            ),
        ]

    def __str__(self) -> str:
        return self.group_id

    def clean(self) -> None:
        session = self.verification_session
        if session is not None and self.person_id and session.person_id != self.person_id:
            raise ValidationError(
                {"verification_session": "This verification session is another person's."}
            )


def asset_file_path(asset: Asset, filename: str) -> str:
    """A random storage name that keeps only the extension of the uploaded file.

    Uploaded names often carry the person's name, and the storage name travels in the signed
    link the upstream downloads from: ``original_filename`` keeps it for staff instead.
    """
    extension = os.path.splitext(filename)[1].lower()[:10]
    return f"assets/{asset.kind}/{secrets.token_hex(16)}{extension}"


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
    kind = models.CharField(max_length=10, choices=Kind.choices)
    file = models.FileField(upload_to=asset_file_path, max_length=300)
    original_filename = models.CharField(max_length=255, blank=True)
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
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AssetQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            FieldCheckConstraint(
                condition=Q(status__in=AssetStatus.values),
                name="asset_status_valid",
                field="status",
                violation_error_message="This is not a status an asset can have.",
            ),
            FieldCheckConstraint(
                condition=Q(kind__in=AssetKind.values),
                name="asset_kind_valid",
                field="kind",
                violation_error_message="An asset is an image, a video or an audio clip.",
            ),
            FieldCheckConstraint(
                condition=~Q(status="active") | Q(upstream_id__isnull=False),
                name="asset_active_has_upstream_id",
                field="upstream_id",
                violation_error_message="An active asset needs the Id the upstream gave it.",
            ),
            models.UniqueConstraint(
                fields=["group", "sha256"],
                condition=~Q(status__in=["rejected", "failed", "withdrawn"]),
                name="asset_file_once_per_group",
                violation_error_message="This file is already registered in this group.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.original_filename or self.upstream_name}"

    def clean(self) -> None:
        # A withdrawn group's person revoked consent or lost verification: nothing more goes in.
        if self._state.adding and self.group_id and self.group.status != GroupStatus.ACTIVE:
            raise ValidationError(
                {"group": "This asset group is withdrawn: it takes no new files."}
            )

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
    def asset_uri(self) -> str:
        """The ``asset://<Id>`` reference producers paste into Seedance 2.0 requests."""
        return f"asset://{self.upstream_id}" if self.upstream_id else ""
