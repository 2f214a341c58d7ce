"""The sandbox upstream's own state: sessions, groups, assets, counters and rate-limit windows.

Nothing here is shared with the portal's models: the sandbox plays a remote service, so the
portal only ever learns about these rows over HTTP.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class GroupType(models.TextChoices):
    LIVENESS_FACE = "LivenessFace", "LivenessFace"
    AIGC = "AIGC", "AIGC"


class AssetType(models.TextChoices):
    IMAGE = "Image", "Image"
    VIDEO = "Video", "Video"
    AUDIO = "Audio", "Audio"


class AssetStatus(models.TextChoices):
    PROCESSING = "Processing", "Processing"
    ACTIVE = "Active", "Active"
    FAILED = "Failed", "Failed"


class SandboxGroup(models.Model):
    """An asset group. LivenessFace groups are made only by completing a verification session."""

    GroupType = GroupType

    group_id = models.CharField("Id", max_length=40, unique=True)
    group_type = models.CharField(max_length=20, choices=GroupType.choices)
    name = models.CharField(max_length=64, blank=True)
    description = models.CharField(max_length=300, blank=True)
    owner_fingerprint = models.CharField(
        max_length=64, db_index=True, help_text="SHA-256 of the API key that owns the group."
    )
    verified_identity = models.CharField(
        max_length=64,
        blank=True,
        help_text="The face identity verified on the phone page (LivenessFace groups only).",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "asset group"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(group_type__in=GroupType.values), name="sandbox_group_type_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.group_id


class SandboxSession(models.Model):
    """A CreateVisualValidateSession call: its token, its one-shot H5 link and its outcome."""

    byted_token = models.CharField("BytedToken", max_length=34, unique=True)
    callback_url = models.TextField("CallbackURL")
    link_id = models.CharField("H5 link id", max_length=40, unique=True)
    owner_fingerprint = models.CharField(
        max_length=64, db_index=True, help_text="SHA-256 of the API key that created the session."
    )
    created_at = models.DateTimeField(default=timezone.now)
    link_opened_at = models.DateTimeField(null=True, blank=True)
    link_used_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    result_code = models.CharField(max_length=10, blank=True)
    identity = models.CharField("identity chosen", max_length=64, blank=True)
    group = models.OneToOneField(
        SandboxGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="session",
        help_text="The LivenessFace group a successful verification created.",
    )

    class Meta:
        verbose_name = "verification session"
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.byted_token

    @property
    def link_expires_at(self) -> datetime.datetime:
        return self.created_at + datetime.timedelta(seconds=settings.SANDBOX_H5_LINK_TTL)

    @property
    def token_expires_at(self) -> datetime.datetime:
        return self.created_at + datetime.timedelta(seconds=settings.SANDBOX_TOKEN_TTL)

    def link_is_usable(self, now: datetime.datetime) -> bool:
        """The H5 link works once, within its lifetime, while the token is still valid."""
        return (
            self.link_used_at is None
            and now < self.link_expires_at
            and not self.token_is_expired(now)
        )

    def token_is_expired(self, now: datetime.datetime) -> bool:
        return now >= self.token_expires_at


class SandboxAssetQuerySet(models.QuerySet["SandboxAsset"]):
    def with_statuses(self, statuses: list[str], now: datetime.datetime) -> SandboxAssetQuerySet:
        """Assets whose time-derived status at ``now`` is one of ``statuses``."""
        condition = Q(pk__in=[])
        for status in statuses:
            if status == AssetStatus.PROCESSING:
                condition |= Q(ready_at__gt=now)
            else:
                condition |= Q(ready_at__lte=now, outcome=status)
        return self.filter(condition)


class SandboxAsset(models.Model):
    """An asset. Its status is derived from the clock: Processing until ``ready_at``, then
    ``outcome`` (Active or Failed), which CreateAsset decided from the face it read."""

    AssetType = AssetType

    asset_id = models.CharField("Id", max_length=40, unique=True)
    group = models.ForeignKey(SandboxGroup, on_delete=models.CASCADE, related_name="assets")
    name = models.CharField(max_length=64)
    asset_type = models.CharField(max_length=10, choices=AssetType.choices)
    source_url = models.TextField("source URL")
    content_type = models.CharField(max_length=100, blank=True)
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    face_identity = models.CharField(
        max_length=64, blank=True, help_text="The face marker read from the file, if any."
    )
    outcome = models.CharField(
        max_length=10,
        choices=[(AssetStatus.ACTIVE, "Active"), (AssetStatus.FAILED, "Failed")],
        default=AssetStatus.ACTIVE,
    )
    error_code = models.CharField(max_length=100, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    ready_at = models.DateTimeField(help_text="When processing ends.")
    updated_at = models.DateTimeField(default=timezone.now)

    objects = SandboxAssetQuerySet.as_manager()

    class Meta:
        verbose_name = "asset"
        ordering = ["-created_at", "-pk"]
        constraints = [
            # The upstream refuses a second asset with the same Name in a group (reference G6).
            models.UniqueConstraint(fields=["group", "name"], name="sandbox_asset_name_per_group"),
            models.CheckConstraint(
                condition=Q(asset_type__in=AssetType.values), name="sandbox_asset_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(outcome__in=["Active", "Failed"]), name="sandbox_asset_outcome_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.asset_id

    def status_at(self, now: datetime.datetime) -> str:
        return AssetStatus.PROCESSING if now < self.ready_at else self.outcome

    def update_time_at(self, now: datetime.datetime) -> datetime.datetime:
        """The upstream's UpdateTime: the last rename, or the end of processing once it ended."""
        if now < self.ready_at:
            return self.updated_at
        return max(self.updated_at, self.ready_at)


class ActionCounter(models.Model):
    """Calls per action since the last reset; read through ``sandbox.counters``."""

    action = models.CharField(max_length=64, unique=True)
    calls = models.PositiveBigIntegerField(default=0)
    rate_limited = models.PositiveBigIntegerField(
        default=0, help_text="Calls refused with 429 by the rate limiter."
    )
    faults = models.PositiveBigIntegerField(
        default=0, help_text="Calls answered with an injected fault (500, 502, 429, timeout, drop)."
    )

    class Meta:
        ordering = ["action"]

    def __str__(self) -> str:
        return self.action


class RateLimitWindow(models.Model):
    """One key's recent calls of one action, as the rate limit counts them (``sandbox.ratelimit``).

    ``version`` grows with every write: a write that names the version it read succeeds only if
    no other process wrote in between.
    """

    owner_fingerprint = models.CharField(max_length=64)
    action = models.CharField(max_length=64)
    arrivals = models.JSONField(
        default=list,
        help_text="Arrival times (seconds since 1970) of the last accepted calls, oldest first.",
    )
    version = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner_fingerprint", "action"], name="sandbox_rate_window_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.owner_fingerprint}"
