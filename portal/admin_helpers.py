"""Pieces the portal's admin classes share: status badges, read-only inlines, private files.

Every uploaded file is private: the storage refuses to give a plain URL. The admin reaches a
file only through ``PrivateFileAdmin``'s view, which checks the staff user's ``view``
permission on the row that owns the file (and, where the admin names one, a permission for the
file itself), records the download in the audit trail and streams it as a download that no cache
keeps and no browser runs
(``portal.private_files.private_file_response``).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import F, Func, IntegerField, Model, QuerySet, Subquery
from django.db.models.fields.files import FieldFile
from django.db.models.functions import Coalesce
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html

from audit.services import audit_record
from portal.private_files import content_type_of_stored_name, private_file_response

# Colour of each status value, across every model that has one.
_TONES = {
    "approved": "green",
    "completed": "green",
    "active": "green",
    "pending_review": "amber",
    "verified": "green",
    "confirmed": "green",
    "sent": "green",
    "invited": "amber",
    "opened": "amber",
    "created": "amber",
    "callback_received": "amber",
    "queued": "amber",
    "uploading": "amber",
    "processing": "amber",
    "rejected": "red",
    "revoked": "red",
    "failed": "red",
}


def badge(value: str, label: str) -> str:
    """A coloured badge for a status value (grey for the quiet ones: draft, expired, ...)."""
    return format_html(
        '<span class="status-badge status-{}">{}</span>', _TONES.get(value, "grey"), label
    )


@admin.display(description="status", ordering="status")
def status_badge(obj: Any) -> str:
    """The badge of a row whose model has a ``status`` choice field."""
    return badge(obj.status, obj.get_status_display())


class StatusColumn:
    """Gives an admin or inline the ``status_badge`` column and read-only field."""

    status_badge = staticmethod(status_badge)


class KeepRows:
    """No deleting from the admin: these rows are evidence or mirror the upstream.

    Revoking consent and withdrawing assets are services of their own, which keep the row.
    """

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(StatusColumn, admin.TabularInline):
    """A list of related rows on a parent page; each row links to its own change page."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PrivateFileAdmin(StatusColumn, admin.ModelAdmin):
    """A ModelAdmin with a staff-only view that streams the row's private file."""

    private_file_field: str
    # The row's field holding the content type measured from the file's bytes, if it has one.
    content_type_field: str | None = None
    # The permission ("app_label.codename") needed to open the file besides viewing its row, or
    # None when whoever may view the row may open its file.
    private_file_permission: str | None = None

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_file"
        view = self.admin_site.admin_view(self.private_file_view, cacheable=True)
        return [path("<path:object_id>/file/", view, name=name), *super().get_urls()]

    def private_file_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such row.")
        if not self.has_private_file_permission(request, obj):
            raise PermissionDenied
        field_file: FieldFile = getattr(obj, self.private_file_field)
        if not field_file.name or not field_file.storage.exists(field_file.name):
            raise Http404("This row has no file.")
        audit_record(
            action="file.downloaded",
            obj=obj,
            actor=request.user,
            person_id=self.audit_person_id(obj),
            detail={"via": "admin", "field": self.private_file_field, "file": field_file.name},
        )
        return private_file_response(
            field_file.open("rb"),
            content_type=self.file_content_type(obj),
            filename=self.download_name(obj),
            as_attachment=True,
        )

    def has_private_file_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whether the user may open the file of ``obj`` (of any row when ``obj`` is None)."""
        if not self.has_view_permission(request, obj):
            return False
        return self.private_file_permission is None or request.user.has_perm(
            self.private_file_permission
        )

    def audit_person_id(self, obj: Any) -> int | None:
        """The person a row's file is of, for its download's audit event."""
        return getattr(obj, "person_id", None)

    def file_content_type(self, obj: Any) -> str:
        """The type measured from the file's bytes: the row's field, else its stored extension."""
        if self.content_type_field:
            return str(getattr(obj, self.content_type_field))
        return content_type_of_stored_name(getattr(obj, self.private_file_field).name)

    def download_name(self, obj: Any) -> str:
        """The name the browser saves the file under (its extension is fixed to the type's)."""
        return file_basename(getattr(obj, self.private_file_field))

    @admin.display(description="file")
    def private_file_link(self, obj: models.Model) -> str:
        return file_link(obj, self.private_file_field)


def fieldsets_without(fieldsets: Any, names: set[str]) -> list[Any]:
    """``fieldsets`` (the admin's ``(title, {"fields": ...})`` pairs) without the fields ``names``;
    a fieldset left with no field is dropped."""
    kept = []
    for title, options in fieldsets:
        fields = tuple(field for field in options["fields"] if field not in names)
        if fields:
            kept.append((title, {**options, "fields": fields}))
    return kept


def file_link(obj: models.Model, field_name: str, label: str = "") -> str:
    """A link to ``obj``'s private file through its admin file view, or "—" when it has none."""
    field_file: FieldFile = getattr(obj, field_name)
    if not field_file:
        return "—"
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_file", args=[quote(obj.pk)])
    text = label or file_basename(field_file)
    return format_html('<a href="{}" target="_blank">{}</a>', url, text)


def file_basename(field_file: FieldFile) -> str:
    return (field_file.name or "file").rsplit("/", 1)[-1]


SYSTEM_FIELDS = ("created_by", "created_at", "updated_at")


class ReadOnlyAdmin(admin.ModelAdmin):
    """A log: rows are written by services only, never added, changed or deleted here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CreatedByAdmin(StatusColumn, admin.ModelAdmin):
    """Records who added a row."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


def count_of(rows: QuerySet[Any]) -> Coalesce:
    """``COUNT(*)`` of ``rows`` (correlated to the outer row) as an annotation."""
    # COUNT as a plain function, not an aggregate: Django would otherwise add a GROUP BY.
    counted = rows.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def may_view(admin_site: admin.AdminSite, request: HttpRequest, model: type[Model]) -> bool:
    """Whether the user may view ``model``'s rows in the admin (its own ModelAdmin decides)."""
    return admin_site.is_registered(model) and admin_site.get_model_admin(
        model
    ).has_view_permission(request)


def post_only(request: HttpRequest) -> HttpResponse | None:
    """A 405 for anything but POST (operations change rows; a GET never does)."""
    return None if request.method == "POST" else HttpResponseNotAllowed(["POST"])


def local_time(moment: Any) -> str:
    """``moment`` in the portal's time zone, as the admin shows times; "—" for none."""
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else "—"


def local_time_to_the_second(moment: Any) -> str:
    """``moment`` in the portal's time zone, to the second, naming the zone (evidence)."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M:%S %Z}" if moment else "—"
