"""The outbox in the admin: every email the portal sent or tried to send, read-only, and the
inline that lists a row's emails on its own page (an invitation's, a consent record's)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.http import HttpRequest

from mail.models import OutboundEmail
from portal.admin_helpers import ReadOnlyAdmin, StatusColumn

_COLUMNS = ("created_at", "to", "kind", "language", "status_badge", "sent_at", "attempts")


class OutboundEmailInline(StatusColumn, GenericTabularInline):
    """The emails about the row of the page (read-only)."""

    model = OutboundEmail
    ct_field = "about_type"
    ct_fk_field = "about_id"
    extra = 0
    can_delete = False
    fields = (*_COLUMNS, "last_error")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboundEmail)
class OutboundEmailAdmin(StatusColumn, ReadOnlyAdmin):
    """Every email, with what became of it; the row is written by ``mail.services`` only."""

    list_display = _COLUMNS
    list_filter = ("status", "kind", "language", "created_at")
    search_fields = ("to", "subject")
    fields = ("kind", "to", "language", "subject", "about_link", "status_badge", "attempts",
              "last_error", "next_attempt_at", "sent_at", "created_by", "created_at",
              "body_text")  # fmt: skip
    readonly_fields = fields

    @admin.display(description="about")
    def about_link(self, email: OutboundEmail) -> str:
        return str(email.about) if email.about is not None else "—"
