"""Admin for verified asset groups and the likeness assets registered in them.

Producers come here for one thing: the ``asset://<Id>`` reference of an active asset, shown
with a copy button. Uploading to the upstream, withdrawing and deleting are later services;
this admin only records files and shows what the upstream said.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from assets.media import LIMITS, MediaRejected, validate_media
from assets.models import Asset, AssetGroup
from portal.admin_helpers import (
    KeepRows,
    PrivateFileAdmin,
    ReadOnlyInline,
    StatusColumn,
    file_link,
)

_SYSTEM_FIELDS = ("created_at", "updated_at")


@admin.display(description="reference")
def asset_reference(asset: Asset) -> str:
    """The ``asset://<Id>`` reference with a copy button, for active assets only."""
    if asset.status != Asset.Status.ACTIVE or not asset.asset_uri:
        return "—"
    return format_html(
        '<code class="asset-uri">{}</code> <button type="button" class="button copy-button" '
        'data-copy="{}" title="Copy to the clipboard">Copy</button>',
        asset.asset_uri,
        asset.asset_uri,
    )


@admin.display(description="measured")
def measured(asset: Asset) -> str:
    """Width x height, duration and frame rate, as far as the file has them."""
    parts = []
    if asset.width and asset.height:
        parts.append(f"{asset.width}x{asset.height}")
    if asset.duration_seconds is not None:
        parts.append(f"{asset.duration_seconds:.1f} s")
    if asset.fps is not None:
        parts.append(f"{asset.fps:g} fps")
    return ", ".join(parts) or "—"


@admin.display(description="file")
def asset_file(asset: Asset) -> str:
    # Stored under a random name (assets.models.asset_file_path); staff know it by its upload name.
    return file_link(asset, "file", asset.original_filename)


class AssetColumns:
    """Gives an admin or inline the asset columns above as read-only fields."""

    reference = staticmethod(asset_reference)
    measured = staticmethod(measured)
    file_link = staticmethod(asset_file)


class AssetAddForm(forms.ModelForm):
    """Records an uploaded file once it passes the upstream's documented limits.

    The kind and the facts read from the file's bytes are filled in, never typed; a file that
    breaks a limit is refused with every reason before anything is stored.
    """

    class Meta:
        model = Asset
        fields = ("group", "file")
        help_texts = {
            "file": " ".join(
                f"{kind.capitalize()}: {limits.describe()}." for kind, limits in LIMITS.items()
            )
        }

    def clean(self) -> dict[str, Any]:
        cleaned = self.cleaned_data
        upload = cleaned.get("file")
        if upload is None or cleaned.get("group") is None:
            return cleaned
        try:
            info = validate_media(upload, filename=upload.name)
        except MediaRejected as rejected:
            raise forms.ValidationError(
                {"file": [violation.message for violation in rejected.violations]}
            ) from rejected
        asset = self.instance
        asset.group = cleaned["group"]
        asset.record_measurements(info, original_filename=upload.name)
        # sha256 is not a form field, so the form's own checks skip the constraint on it.
        asset.validate_constraints()
        return cleaned


class AssetInline(AssetColumns, ReadOnlyInline):
    model = Asset
    fields = ("kind", "status_badge", "reference", "measured", "file_link", "created_at")
    readonly_fields = fields


@admin.register(AssetGroup)
class AssetGroupAdmin(KeepRows, StatusColumn, admin.ModelAdmin):
    list_display = (
        "group_id",
        "group_type",
        "person",
        "status_badge",
        "asset_count",
        "created_at",
    )
    list_select_related = ("person",)
    list_filter = ("group_type", "status", "created_at")
    search_fields = ("group_id", "person__legal_name", "person__display_name", "person__email")
    autocomplete_fields = ("person",)
    inlines = (AssetInline,)
    fieldsets = (
        (None, {"fields": ("group_id", "group_type", "person", "upstream_verification")}),
        (
            "System",
            {
                "classes": ("collapse",),
                "fields": ("status_badge", "api_key_fingerprint", "created_at", "withdrawn_at"),
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[AssetGroup]:
        return super().get_queryset(request).annotate(asset_count=Count("assets"))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[Any, ...]:
        # Only a confirmed verification links a group to its upstream session (consent.services).
        system = (
            "upstream_verification",
            "status_badge",
            "api_key_fingerprint",
            "created_at",
            "withdrawn_at",
        )
        if obj is None:
            return system
        # The upstream made the group for this person: none of that changes afterwards.
        return ("group_id", "group_type", "person", *system)

    @admin.display(description="assets", ordering="asset_count")
    def asset_count(self, group: AssetGroup) -> int:
        return group.asset_count  # type: ignore[attr-defined]


@admin.register(Asset)
class AssetAdmin(KeepRows, AssetColumns, PrivateFileAdmin):
    private_file_field = "file"
    content_type_field = "content_type"
    list_display = (
        "__str__",
        "person",
        "kind",
        "status_badge",
        "reference",
        "measured",
        "size",
        "created_at",
    )
    list_select_related = ("group", "group__person")
    list_filter = ("status", "kind", "group__group_type", "created_at")
    search_fields = (
        "upstream_id",
        "upstream_name",
        "original_filename",
        "sha256",
        "group__group_id",
        "group__person__legal_name",
        "group__person__display_name",
    )
    autocomplete_fields = ("group",)
    readonly_fields = (
        "group",
        "kind",
        "file_link",
        "status_badge",
        "reference",
        "original_filename",
        "content_type",
        "size_bytes",
        "sha256",
        "width",
        "height",
        "duration_seconds",
        "fps",
        "upstream_name",
        "upstream_id",
        "attempts",
        "error_code",
        "error_message",
        "uploaded_by",
        *_SYSTEM_FIELDS,
    )
    fieldsets = (
        (None, {"fields": ("group", "kind", "file_link", "status_badge", "reference")}),
        (
            "Measured",
            {
                "classes": ("collapse",),
                "fields": (
                    "original_filename",
                    "content_type",
                    "size_bytes",
                    "sha256",
                    ("width", "height"),
                    ("duration_seconds", "fps"),
                ),
            },
        ),
        (
            "Upstream",
            {
                "classes": ("collapse",),
                "fields": (
                    "upstream_name",
                    "upstream_id",
                    "attempts",
                    "error_code",
                    "error_message",
                ),
            },
        ),
        ("System", {"classes": ("collapse",), "fields": ("uploaded_by", *_SYSTEM_FIELDS)}),
    )
    add_fieldsets = ((None, {"fields": ("group", "file")}),)

    def get_form(
        self, request: HttpRequest, obj: Asset | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = AssetAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return () if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: Asset, form: Any, change: bool) -> None:
        if not change:
            obj.uploaded_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)

    def download_name(self, obj: Asset) -> str:
        return obj.original_filename or super().download_name(obj)

    @admin.display(description="size", ordering="size_bytes")
    def size(self, asset: Asset) -> str:
        return filesizeformat(asset.size_bytes)

    @admin.display(description="person", ordering="group__person__legal_name")
    def person(self, asset: Asset) -> str:
        return str(asset.group.person)
