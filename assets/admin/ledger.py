"""Admin of where a likeness went: the reference ledger and what producers were told (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.db.models import OuterRef, Prefetch, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assets.models import (
    ProducerNotice,
    ReferenceCopy,
)
from portal.admin_filters import ScalableChangelist, TypedValueFilter
from portal.admin_helpers import (
    ReadOnlyAdmin,
    count_of,
    status_badge,
)

_SYSTEM_FIELDS = ("created_at", "updated_at")

# Opening an asset's original file (the person's face, body or voice as recorded) takes more than
# viewing its row: producers view rows and copy references, and never get this permission.
ASSET_FILE_PERMISSION = "assets.view_asset_file"


# --- Where a likeness went: the reference ledger and what producers were told ------------------


@admin.register(ReferenceCopy)
class ReferenceCopyAdmin(ScalableChangelist, ReadOnlyAdmin):
    """Every reference handed to a producer, by asset, person, user and project (for legal)."""

    list_display = ("copied_at", "user", "person", "asset_link", "reference", "project", "kind")
    list_select_related = ("user", "asset__group__person")
    # Users are the few staff accounts; a person, an asset or a project is typed in (or comes
    # from a link): listing every one of them is megabytes of HTML at 50,000 people (issue 16).
    list_filter = (
        "kind",
        ("user", admin.RelatedFieldListFilter),
        ("asset__group__person", TypedValueFilter),
        ("asset", TypedValueFilter),
        ("project", TypedValueFilter),
        "copied_at",
    )
    search_fields = (
        "reference",
        "project",
        "user__username",
        "asset__upstream_id",
        "asset__group__person__legal_name",
        "asset__group__person__display_name",
    )
    fields = (
        "copied_at",
        "user",
        "person",
        "asset_link",
        "reference",
        "project",
        "kind",
        "request_id",
    )
    readonly_fields = fields

    @admin.display(description="person", ordering="asset__group__person__legal_name")
    def person(self, copy: ReferenceCopy) -> str:
        return str(copy.asset.group.person)

    @admin.display(description="asset", ordering="asset")
    def asset_link(self, copy: ReferenceCopy) -> str:
        url = reverse("admin:assets_asset_change", args=[quote(copy.asset_id)])
        return format_html('<a href="{}">{}</a>', url, copy.asset)


@admin.register(ProducerNotice)
class ProducerNoticeAdmin(ScalableChangelist, ReadOnlyAdmin):
    """What producers were told about withdrawn references, and whether they acknowledged it."""

    list_display = (
        "created_at", "user", "reason", "reference_count", "acknowledged_at", "email"
    )  # fmt: skip
    list_select_related = ("user",)
    list_filter = (("acknowledged_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("user__username", "reason", "copies__reference")
    fields = ("user", "created_at", "reason", "references", "acknowledged_at", "email")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[ProducerNotice]:
        queryset = super().get_queryset(request).prefetch_related("emails")
        copies = ProducerNotice.copies.through.objects.filter(producernotice=OuterRef("pk"))
        return queryset.annotate(reference_count=count_of(copies))

    @admin.display(description="email")
    def email(self, notice: ProducerNotice) -> str:
        emails = list(notice.emails.all())
        return status_badge(emails[0]) if emails else "— (no address)"

    @admin.display(description="copies", ordering="reference_count")
    def reference_count(self, notice: ProducerNotice) -> int:
        return notice.reference_count  # type: ignore[attr-defined]

    @admin.display(description="references")
    def references(self, notice: ProducerNotice) -> str:
        copies = ReferenceCopy.objects.select_related("asset__group__person")
        notice = ProducerNotice.objects.prefetch_related(Prefetch("copies", queryset=copies)).get(
            pk=notice.pk
        )
        return format_html_join(
            mark_safe("<br>"),
            "{} ({}): {}, copied for {}",
            (
                (line["person"], line["kind"].lower(), line["reference"], line["project"])
                for line in notice.lines()
            ),
        )
