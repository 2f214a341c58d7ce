"""Admin for people, their consent records and their verification sessions.

Onboarding staff create people and record consent here. Review, revocation and invitations are
workflows with rules of their own (later services): their fields are shown, never typed in.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F, Func, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from assets.admin import asset_file, asset_reference, asset_state, measured, upload_view
from assets.models import Asset, AssetGroup
from consent.models import ConsentRecord, ConsentStatus, Person, VerificationSession
from portal.admin_helpers import (
    KeepRows,
    PrivateFileAdmin,
    ReadOnlyInline,
    StatusColumn,
    badge,
    status_badge,
)

_SYSTEM_FIELDS = ("created_by", "created_at", "updated_at")


def _count(rows: QuerySet[Any]) -> Coalesce:
    """``COUNT(*)`` of ``rows`` (correlated to the outer row) as an annotation."""
    # COUNT as a plain function, not an aggregate: Django would otherwise add a GROUP BY.
    counted = rows.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class CreatedByAdmin(StatusColumn, admin.ModelAdmin):
    """Records who added a row."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


class ConsentRecordInline(ReadOnlyInline):
    model = ConsentRecord
    fields = ("consent_text_version", "status_badge", "starts_on", "expires_on", "created_at")
    readonly_fields = fields


class VerificationSessionInline(ReadOnlyInline):
    model = VerificationSession
    fk_name = "person"
    fields = ("status_badge", "created_at", "completed_at")
    readonly_fields = fields


class AssetGroupInline(ReadOnlyInline):
    model = AssetGroup
    fields = ("group_id", "group_type", "status_badge", "created_at")
    readonly_fields = fields


@admin.register(Person)
class PersonAdmin(CreatedByAdmin):
    list_display = (
        "legal_name",
        "display_name",
        "email",
        "preferred_language",
        "latest_consent",
        "consent_count",
        "active_asset_count",
        "created_at",
    )
    list_filter = ("preferred_language", "created_at")
    search_fields = ("legal_name", "display_name", "email", "phone")
    readonly_fields = ("asset_list", *_SYSTEM_FIELDS)
    fieldsets = (
        (None, {"fields": ("legal_name", "display_name", "preferred_language")}),
        ("Contact", {"fields": ("email", "phone", "notes")}),
        ("Assets", {"fields": ("asset_list",)}),
        ("System", {"classes": ("collapse",), "fields": _SYSTEM_FIELDS}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Person]:
        latest = ConsentRecord.objects.filter(person=OuterRef("pk")).order_by("-created_at", "-pk")
        # Each count in its own subquery: joining consent records and assets in one query would
        # multiply them per person before counting.
        consents = ConsentRecord.objects.filter(person=OuterRef("pk"))
        active_assets = Asset.objects.active().filter(group__person=OuterRef("pk"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                latest_consent_status=Subquery(latest.values("status")[:1]),
                consent_count=_count(consents),
                active_asset_count=_count(active_assets),
            )
        )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:  # a new person has no assets yet
            return [fieldset for fieldset in self.fieldsets if fieldset[0] != "Assets"]
        return self.fieldsets

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        if obj is None:
            return ()
        return (ConsentRecordInline, VerificationSessionInline, AssetGroupInline)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.upload_assets_view)
        return [
            path("<path:object_id>/upload-assets/", view, name="consent_person_upload_assets"),
            *super().get_urls(),
        ]

    def upload_assets_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Several files of this person at once, each checked and queued on its own."""
        person = self.get_object(request, unquote(object_id))
        if person is None:
            raise Http404("No such person.")
        if not self.has_view_permission(request, person):
            raise PermissionDenied
        return upload_view(request, model_admin=self, person=person)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        extra_context = {
            **(extra_context or {}),
            "can_upload_assets": request.user.has_perm("assets.add_asset"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    @admin.display(description="latest consent", ordering="latest_consent_status")
    def latest_consent(self, person: Person) -> str:
        status = person.latest_consent_status  # type: ignore[attr-defined]
        return badge(status, ConsentStatus(status).label) if status else "—"

    @admin.display(description="consents", ordering="consent_count")
    def consent_count(self, person: Person) -> int:
        return person.consent_count  # type: ignore[attr-defined]

    @admin.display(description="active assets", ordering="active_asset_count")
    def active_asset_count(self, person: Person) -> int:
        return person.active_asset_count  # type: ignore[attr-defined]

    @admin.display(description="assets")
    def asset_list(self, person: Person) -> str:
        """Every asset in the person's groups, with its reference and file."""
        assets = Asset.objects.filter(group__person=person).select_related("group")
        rows = format_html_join(
            "",
            "<tr><td><a href='{}'>{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
            "<td>{}</td><td>{}</td></tr>",
            (
                (
                    reverse("admin:assets_asset_change", args=[asset.pk]),
                    asset,
                    asset.group,
                    status_badge(asset),
                    asset_state(asset),
                    asset_reference(asset),
                    measured(asset),
                    asset_file(asset),
                )
                for asset in assets
            ),
        )
        if not rows:
            return "—"
        return format_html(
            '<table class="asset-list"><thead><tr><th>asset</th><th>group</th><th>status</th>'
            "<th>state</th><th>reference</th><th>measured</th><th>file</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )


@admin.register(ConsentRecord)
class ConsentRecordAdmin(KeepRows, PrivateFileAdmin, CreatedByAdmin):
    private_file_field = "signed_document"
    list_display = (
        "person",
        "consent_text_version",
        "status_badge",
        "covers",
        "territory",
        "starts_on",
        "expires_on",
        "created_at",
    )
    list_select_related = ("person",)
    list_filter = (
        "status",
        "capture_method",
        "covers_images",
        "covers_video",
        "covers_audio",
        "starts_on",
        "expires_on",
    )
    search_fields = (
        "person__legal_name",
        "person__display_name",
        "person__email",
        "consent_text_version",
        "projects",
    )
    autocomplete_fields = ("person",)
    date_hierarchy = "created_at"
    _review_fields = (
        "status_badge",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "revoked_at",
        "revocation_reason",
    )
    readonly_fields = ("private_file_link", *_review_fields, *_SYSTEM_FIELDS)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # A signed document, once attached, is evidence: it is shown, never replaced.
        document = "private_file_link" if obj and obj.signed_document else "signed_document"
        return (
            (None, {"fields": ("person", "consent_text_version", "capture_method")}),
            (
                "Scope",
                {
                    "fields": (
                        "intended_uses",
                        "projects",
                        ("covers_images", "covers_video", "covers_audio"),
                        "territory",
                        ("starts_on", "expires_on"),
                    )
                },
            ),
            ("Signed document", {"fields": (document,)}),
            ("Review", {"fields": self._review_fields}),
            ("System", {"classes": ("collapse",), "fields": _SYSTEM_FIELDS}),
        )

    @admin.display(description="covers")
    def covers(self, record: ConsentRecord) -> str:
        return ", ".join(record.media_types())


@admin.register(VerificationSession)
class VerificationSessionAdmin(KeepRows, CreatedByAdmin):
    list_display = (
        "person",
        "status_badge",
        "consent",
        "created_at",
        "token_expires_at",
        "completed_at",
        "attempts",
    )
    list_select_related = ("person", "consent", "consent__person")
    list_filter = ("status", "created_at", "completed_at")
    search_fields = ("person__legal_name", "person__display_name", "person__email", "byted_token")
    autocomplete_fields = ("person", "consent")
    _upstream_fields = (
        "byted_token",
        "h5_link",
        "h5_link_expires_at",
        "token_expires_at",
        "callback_params",
        "api_key_fingerprint",
        "attempts",
        "last_error",
    )
    _system_fields = ("invitation_token", *_SYSTEM_FIELDS, "completed_at")
    fieldsets = (
        (None, {"fields": ("person", "consent", "status_badge")}),
        ("Upstream session", {"classes": ("collapse",), "fields": _upstream_fields}),
        ("System", {"classes": ("collapse",), "fields": _system_fields}),
    )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        system = ("status_badge", *self._upstream_fields, *self._system_fields)
        # An invitation belongs to one person and consent for good.
        return system if obj is None else ("person", "consent", *system)
