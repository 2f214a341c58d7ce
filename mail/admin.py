"""The outbox in the admin: every email the portal sent or tried to send, read-only, and the
inline that lists a row's emails on its own page (an invitation's, a consent record's)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline
from django.http import HttpRequest

from mail.models import OutboundEmail
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import ReadOnlyAdmin, StatusColumn

_COLUMNS = ("created_at", "to", "kind", "language", "status_badge", "sent_at", "attempts")


def _hidden_credentials(request: HttpRequest, email: OutboundEmail) -> bool:
    """Whether ``email``'s subject has credentials (``credentials()``, with the permission that
    may see them, ``credentials_permission``) that the user may not see."""
    about = email.about
    permission = getattr(about, "credentials_permission", "")
    return bool(permission) and not request.user.has_perm(permission)


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
class OutboundEmailAdmin(ScalableChangelist, StatusColumn, ReadOnlyAdmin):
    """Every email, with what became of it; the row is written by ``mail.services`` only."""

    list_display = _COLUMNS
    list_filter = ("status", "kind", "language", "created_at")
    search_fields = ("to", "subject")
    fields = ("kind", "to", "language", "subject", "about_link", "status_badge", "attempts",
              "last_error", "next_attempt_at", "sent_at", "created_by", "created_at",
              "body_text")  # fmt: skip
    readonly_fields = (*fields, "body_without_credentials")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """The body as sent, unless it carries credentials of its subject (an invitation's link
        and code) that the user may not hold: then without them."""
        fields = list(super().get_fields(request, obj))
        if obj is not None and _hidden_credentials(request, obj):
            fields[fields.index("body_text")] = "body_without_credentials"
        return fields

    @admin.display(description="body text")
    def body_without_credentials(self, email: OutboundEmail) -> str:
        body = email.body_text
        for credential in getattr(email.about, "credentials", list)():
            body = body.replace(credential, "[hidden]")
        return body

    @admin.display(description="about")
    def about_link(self, email: OutboundEmail) -> str:
        return str(email.about) if email.about is not None else "—"
