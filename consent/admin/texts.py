"""Admin of consent texts: legal writes template versions, publishes them, and they freeze.

A version is edited while unpublished (its SHA-256 is the portal's, computed from the text);
"Publish" (``consent.template_versions.template_version_publish``, legal's permission) freezes it
for good, and drafts of consent records may then pick it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin import AuditedSavesAdmin
from consent.models import (
    ConsentSignature,
    ConsentTemplate,
    ConsentTemplateVersion,
    TemplateField,
    TemplateNotice,
    TemplateVersionFrozen,
)
from consent.template_versions import template_version_publish
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import CreatedByAdmin


class TemplateVersionInline(admin.TabularInline):
    model = ConsentTemplateVersion
    fields = ("version", "language", "sha256", "published_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ConsentTemplate)
class ConsentTemplateAdmin(AuditedSavesAdmin, CreatedByAdmin):
    audit_prefix = "consent_template"
    list_display = ("name", "created_at")
    search_fields = ("name",)
    fields = ("name", "description")
    inlines = (TemplateVersionInline,)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TemplateVersionForm(forms.ModelForm):
    notices = forms.MultipleChoiceField(
        choices=TemplateNotice.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="The notices the text contains: the person confirms each when signing.",
    )
    required_fields = forms.MultipleChoiceField(
        choices=TemplateField.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="What the person gives when signing, beyond their typed full legal name.",
    )

    class Meta:
        model = ConsentTemplateVersion
        fields = ("template", "version", "language", "text", "notices", "required_fields")


@admin.register(ConsentTemplateVersion)
class ConsentTemplateVersionAdmin(AuditedSavesAdmin, CreatedByAdmin):
    """Versions of consent texts; a published one is shown read-only, never changed."""

    audit_prefix = "consent_template"
    audit_change_action = "version_changed"
    form = TemplateVersionForm
    list_display = ("template", "version", "language", "published_at", "short_sha256")
    list_filter = ("language", ("published_at", admin.EmptyFieldListFilter), "template")
    search_fields = ("template__name", "version", "sha256")
    readonly_fields = ("sha256", "published_at", "published_by")
    actions = ("publish",)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return (
            "template",
            ("version", "language"),
            "text",
            "notices",
            "required_fields",
            "sha256",
            ("published_at", "published_by"),
        )

    @admin.display(description="SHA-256")
    def short_sha256(self, version: ConsentTemplateVersion) -> str:
        return version.sha256[:12] + "…"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_published:
            return False  # frozen: shown read-only
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.is_published:
            return False
        return super().has_delete_permission(request, obj)

    def has_publish_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("consent.publish_consenttemplateversion")

    @admin.action(description="Publish (freeze for good)", permissions=["publish"])
    def publish(self, request: HttpRequest, queryset: QuerySet[ConsentTemplateVersion]) -> None:
        for version in queryset:
            try:
                template_version_publish(version=version, actor=request.user)
            except TemplateVersionFrozen as refused:
                self.message_user(request, str(refused), messages.WARNING)
            else:
                self.message_user(
                    request, f"{version} is published (SHA-256 {version.sha256}).", messages.SUCCESS
                )


@admin.register(ConsentSignature)
class ConsentSignatureAdmin(ScalableChangelist, admin.ModelAdmin):
    """The evidence of electronic signatures: read-only, written by the signing only."""

    list_display = ("consent", "typed_name", "signed_at", "ip_address")
    list_select_related = ("consent__person",)
    search_fields = ("typed_name", "consent__person__legal_name")
    exclude = ("drawn_signature",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [f.name for f in ConsentSignature._meta.fields if f.name != "drawn_signature"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
