"""Verified asset groups and the likeness assets registered in them."""

from __future__ import annotations

import datetime
import secrets
import uuid
from operator import attrgetter

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from assets.media import MediaInfo
from consent.models import COVERS_FIELDS, ConsentRecord, Person
from mail.models import emails_about
from portal.constraints import FieldCheckConstraint
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
    upstream_session = models.OneToOneField(
        "verification.UpstreamSession",
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
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="asset_group_newest_first"),
        ]
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

    def is_verified_liveness(self) -> bool:
        """Whether a completed real-person verification made this group.

        The one rule for "a real person's files may go here": a LivenessFace group linked to the
        verification that created it. A group typed in by hand has no such link, and AIGC groups
        are never for real people.
        """
        return self.group_type == GroupType.LIVENESS_FACE and self.upstream_session_id is not None

    def clean(self) -> None:
        session = self.upstream_session
        if (
            session is not None
            and self.person_id
            and session.invitation.person_id != self.person_id
        ):
            raise ValidationError(
                {"upstream_session": "This verification session is another person's."}
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
    media_destroyed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When retention destroyed its files (the hash, sizes and ids stay as proof).",
    )
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
            FieldCheckConstraint(
                condition=~Q(status="processing") | Q(upstream_id__isnull=False),
                name="asset_processing_has_upstream_id",
                field="upstream_id",
                violation_error_message=(
                    "An asset processing upstream needs the Id the upstream gave it."
                ),
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
            # The changelist's default order (issue 16)
            models.Index(fields=["-created_at", "-id"], name="asset_newest_first"),
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

    def is_usable_by_producers(self, on: datetime.date | None = None) -> bool:
        """Whether this row is in ``Asset.objects.usable_by_producers(on)``: the same rule, for
        a row already loaded (its copy button shows only then)."""
        consent = self.consent
        return (
            self.status == AssetStatus.ACTIVE
            and self.group.status == GroupStatus.ACTIVE
            and consent is not None
            and consent.is_in_force(on)
            and self.kind in consent.media_types()
        )

    @property
    def asset_uri(self) -> str:
        """The ``asset://<Id>`` reference producers paste into Seedance 2.0 requests."""
        return f"asset://{self.upstream_id}" if self.upstream_id else ""


# --- Withdrawals: a consent ended, its likeness leaves the upstream -------------------------------


class WithdrawalReason(models.TextChoices):
    REVOKED = "revoked", "Consent revoked"
    EXPIRED = "expired", "Consent expired"
    SUPERSEDED = "superseded", "Superseded by a version that does not cover it"


class WithdrawalQuerySet(models.QuerySet["Withdrawal"]):
    def unconfirmed(self) -> WithdrawalQuerySet:
        """Withdrawals the upstream has not yet confirmed in full: legal's queue."""
        return self.filter(confirmed_at__isnull=True)


class Withdrawal(models.Model):
    """The proof that a consent's end reached the upstream: one row per ended consent.

    Made in the same transaction that ends the consent (``assets.services.withdrawal_start``),
    with one ``WithdrawalItem`` per asset of that consent (DeleteAsset) and per asset group
    deleted with it (DeleteAssetGroup). It is confirmed when every item is; items are worked by
    ``assets.tasks.withdraw_item`` and never deleted.
    """

    Reason = WithdrawalReason

    consent = models.OneToOneField(
        "consent.ConsentRecord", on_delete=models.PROTECT, related_name="withdrawal"
    )
    person = models.ForeignKey("consent.Person", on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(max_length=20, choices=Reason.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who recorded the revocation (empty: the scheduler, at the end date).",
    )
    requested_by_label = models.CharField(
        max_length=150, help_text="Who or what triggered it, as it read then."
    )
    groups_decision = models.TextField(
        help_text="Whether the person's asset groups are deleted upstream too, and why."
    )
    confirmed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the upstream had confirmed every item."
    )
    producers_notified_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = WithdrawalQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="withdrawal_newest_first"),
        ]
        constraints = [
            FieldCheckConstraint(
                condition=Q(reason__in=WithdrawalReason.values),
                name="withdrawal_reason_valid",
                field="reason",
                violation_error_message="This is not a reason a withdrawal can have.",
            ),
        ]

    def __str__(self) -> str:
        return f"Withdrawal #{self.pk} of {self.person} ({self.get_reason_display().lower()})"


class WithdrawalItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    CONFIRMED = "confirmed", "Confirmed upstream"
    FAILED = "failed", "Failed: needs staff"


class WithdrawalOutcome(models.TextChoices):
    DELETED = "deleted", "Deleted upstream by the portal's DeleteAsset (or DeleteAssetGroup)"
    ALREADY_GONE = (
        "already_gone",
        "Already gone before the portal's first delete (NotFound, and no longer listed)",
    )
    NEVER_UPLOADED = "never_uploaded", "Never uploaded: nothing was ever sent upstream"
    NOT_FOUND_BY_NAME = (
        "not_found_by_name",
        ("Never reached the upstream: no asset of its Name appeared there"),
    )
    DELETED_WITH_GROUP = "deleted_with_group", "Deleted with its group (DeleteAssetGroup)"


class WithdrawalProof(models.TextChoices):
    """How a confirmed withdrawal item was proven gone upstream."""

    DELETE_ANSWER = "delete_answer", "DeleteAsset answered OK"
    LISTING = "listing", "ListAssets of its group no longer lists it"
    GROUP_LISTING = (
        "group_listing",
        "ListAssets shows nothing of its group after DeleteAssetGroup",
    )
    # Items confirmed before a group's deletion was proven by its listing: the answer alone.
    GROUP_DELETED = "group_deleted", "DeleteAssetGroup answered (its group is gone)"


class WithdrawalItemQuerySet(models.QuerySet["WithdrawalItem"]):
    def due(self, now: datetime.datetime) -> WithdrawalItemQuerySet:
        """Pending items whose next attempt has come."""
        return self.filter(status=WithdrawalItemStatus.PENDING, next_attempt_at__lte=now)

    def unconfirmed(self) -> WithdrawalItemQuerySet:
        return self.exclude(status=WithdrawalItemStatus.CONFIRMED)

    def ready(self) -> WithdrawalItemQuerySet:
        """Asset items, and group items whose withdrawal has no asset item of that group still
        pending: DeleteAssetGroup comes after the DeleteAsset of each asset listed in it."""
        waiting = WithdrawalItem.objects.filter(
            withdrawal_id=OuterRef("withdrawal_id"),
            group_id=OuterRef("group_id"),
            asset__isnull=False,
            status=WithdrawalItemStatus.PENDING,
        )
        return self.filter(Q(asset__isnull=False) | ~Exists(waiting))


class WithdrawalItem(models.Model):
    """One upstream deletion of a withdrawal: an asset (DeleteAsset) or a group
    (DeleteAssetGroup, ``asset`` empty), and the upstream's confirmation.

    ``pending`` until the upstream answers OK, or, after an ambiguous or NotFound answer, until a
    listing of its group no longer shows it (``proven_by`` says which); ``already_gone`` only
    when it was gone before the portal's first delete (``delete_sent_at``); a transient error
    (429, 5xx, timeout) only sets ``next_attempt_at`` later; an error no retry fixes (the key was
    refused, the group is another key's) makes it ``failed`` until staff retry it. A worker
    claims it by a conditional UPDATE that moves ``next_attempt_at`` past a lease and counts the
    attempt; the attempt count is the claim's token.
    """

    Status = WithdrawalItemStatus
    Outcome = WithdrawalOutcome
    Proof = WithdrawalProof

    withdrawal = models.ForeignKey(Withdrawal, on_delete=models.PROTECT, related_name="items")
    asset = models.ForeignKey(
        Asset, null=True, blank=True, on_delete=models.PROTECT, related_name="withdrawal_items"
    )
    group = models.ForeignKey(AssetGroup, on_delete=models.PROTECT, related_name="withdrawal_items")
    upstream_id = models.CharField(
        "upstream Id",
        max_length=64,
        blank=True,
        help_text="The asset Id (or GroupId) deleted upstream; empty if it never had one.",
    )
    status = models.CharField(
        max_length=20, choices=Status.choices, default=WithdrawalItemStatus.PENDING
    )
    outcome = models.CharField(max_length=30, choices=Outcome.choices, blank=True)
    proven_by = models.CharField(
        "proven by",
        max_length=20,
        choices=WithdrawalProof.choices,
        blank=True,
        help_text=(
            "How the confirmation was proven: the DeleteAsset answer, a listing of the group that "
            "no longer shows it (after an ambiguous or NotFound answer), or, for a group and what "
            "was left in it, a listing that shows nothing of the group after DeleteAssetGroup. "
            "Empty when nothing ever reached the upstream."
        ),
    )
    delete_sent_at = models.DateTimeField(
        "first delete sent",
        null=True,
        blank=True,
        help_text=(
            "When the portal's first DeleteAsset (or DeleteAssetGroup) for it left, recorded "
            "before sending: a later NotFound is then this deletion's, not 'already gone'."
        ),
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A create whose answer was lost may still land upstream until then: its Name is looked up
    # again until this time before the item is confirmed as never having reached the upstream.
    settle_after = models.DateTimeField(null=True, blank=True)
    last_error_code = models.CharField(max_length=100, blank=True)
    last_error = models.TextField(blank=True, help_text="The upstream's own words, or ours.")
    last_error_explanation = models.TextField(blank=True)
    confirmed_at = models.DateTimeField(
        "upstream confirmation",
        null=True,
        blank=True,
        help_text="When the deletion was proven (see 'proven by').",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = WithdrawalItemQuerySet.as_manager()

    class Meta:
        # Assets first, then their groups (DeleteAssetGroup comes last).
        ordering = ["withdrawal", models.F("asset").asc(nulls_last=True), "pk"]
        constraints = [
            FieldCheckConstraint(
                condition=Q(status__in=WithdrawalItemStatus.values),
                name="withdrawal_item_status_valid",
                field="status",
                violation_error_message="This is not a status a withdrawal item can have.",
            ),
            FieldCheckConstraint(
                condition=~Q(status="confirmed") | (Q(confirmed_at__isnull=False) & ~Q(outcome="")),
                name="withdrawal_item_confirmed_has_time",
                field="status",
                violation_error_message=(
                    "A confirmed withdrawal item needs the upstream's answer and its time."
                ),
            ),
            models.UniqueConstraint(
                fields=["withdrawal", "asset"],
                name="withdrawal_item_asset_once",
                violation_error_message="This asset is already listed in this withdrawal.",
            ),
            models.UniqueConstraint(
                fields=["withdrawal", "group"],
                condition=Q(asset__isnull=True),
                name="withdrawal_item_group_once",
                violation_error_message="This group is already listed in this withdrawal.",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="withdrawal_item_due"),
        ]

    def __str__(self) -> str:
        what = f"asset {self.asset}" if self.asset_id else f"group {self.group}"
        return f"Delete {what} ({self.get_status_display().lower()})"

    @property
    def is_group(self) -> bool:
        return self.asset_id is None


# --- Producers: the reference ledger and what producers were told -------------------------------


class ReferenceCopyKind(models.TextChoices):
    REFERENCE = "reference", "asset:// reference"
    CONTENT_ITEM = "content_item", "Seedance 2.0 content item"
    CONTENT_ARRAY = "content_array", "Seedance 2.0 content array"


class ReferenceCopy(models.Model):
    """One reference of an asset handed to a producer: who, which asset, when, for which project.

    Written by ``assets.services.reference_copy_create`` before the text reaches the clipboard,
    so no reference leaves the references page without a row. A content array copies several
    assets at once: one row each, sharing the request id. Rows are never changed or deleted.
    """

    Kind = ReferenceCopyKind

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reference_copies"
    )
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="reference_copies")
    reference = models.CharField(
        max_length=80, help_text="The asset://<Id> reference as it was copied."
    )
    project = models.CharField(
        max_length=200, help_text="The project the producer stated (one of the consent's uses)."
    )
    kind = models.CharField("copied as", max_length=20, choices=Kind.choices)
    copied_at = models.DateTimeField(default=timezone.now, db_index=True)
    request_id = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["-copied_at", "-pk"]
        indexes = [
            models.Index(fields=["-copied_at", "-id"], name="reference_copy_newest_first"),
        ]
        verbose_name_plural = "reference copies"
        permissions = [
            (
                "view_references",
                "Can use the references page (see usable assets, copy their references)",
            ),
        ]
        constraints = [
            FieldCheckConstraint(
                condition=Q(kind__in=ReferenceCopyKind.values),
                name="reference_copy_kind_valid",
                field="kind",
                violation_error_message=(
                    "A copy is of a reference, a content item or a content array."
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} copied by {self.user} for {self.project}"


class ProducerNotice(models.Model):
    """A message to a producer that references they copied may no longer be used.

    Made by ``assets.services.reference_copies_notify_withdrawn`` (with an email); shown at the
    top of the references page and of the admin until the producer acknowledges it.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="producer_notices"
    )
    reason = models.TextField(help_text="Why the references may no longer be used.")
    copies = models.ManyToManyField(
        ReferenceCopy,
        related_name="notices",
        help_text="The producer's copies this notice is about.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)

    emails = emails_about()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # The changelist's default order (issue 16)
            models.Index(fields=["-created_at", "-id"], name="producer_notice_newest_first"),
            # A producer's unread notices, looked up on every page they open.
            models.Index(
                fields=["user"],
                condition=models.Q(acknowledged_at__isnull=True),
                name="producer_notice_unread",
            ),
        ]

    def __str__(self) -> str:
        return f"Notice to {self.user} of {self.created_at:%Y-%m-%d}"

    def lines(self) -> list[dict[str, str]]:
        """Each asset and project the notice is about, once: person, kind, reference, project.

        Reads ``copies`` (prefetch ``copies__asset__group__person`` for a list of notices).
        """
        seen: dict[tuple[str, str], dict[str, str]] = {}
        for copy in sorted(self.copies.all(), key=attrgetter("copied_at", "pk")):
            asset = copy.asset
            seen.setdefault(
                (copy.reference, copy.project),
                {
                    "person": producer_name(asset.group.person),
                    "kind": asset.get_kind_display(),
                    "reference": copy.reference,
                    "project": copy.project,
                },
            )
        return list(seen.values())


def producer_name(person: Person) -> str:
    """How producers know a person: the display name only (never the legal name)."""
    return person.display_name or f"Person #{person.pk}"
