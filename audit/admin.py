"""The audit trail in the admin: read-only for everyone, superusers included."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("occurred_at", "actor_label", "action", "object_repr", "request_id")
    list_filter = ("action", "object_type", "occurred_at")
    search_fields = ("action", "object_repr", "actor_label", "request_id", "=object_id")
    date_hierarchy = "occurred_at"
    readonly_fields = (
        "occurred_at",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "person_id",
        "changes",
        "detail_json",
        "request_id",
        "previous_hash",
        "hash",
    )
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="before → after")
    def changes(self, event: AuditEvent) -> str:
        return changes_table(event)

    @admin.display(description="detail")
    def detail_json(self, event: AuditEvent) -> str:
        return format_html("<pre>{}</pre>", json.dumps(event.detail, indent=2, sort_keys=True))


def changes_table(event: AuditEvent) -> str:
    """The fields an event changed, one row each: before, after."""
    before, after = event.before or {}, event.after or {}
    keys = [key for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)]
    if not keys:
        return "—"
    rows = format_html_join(
        "",
        "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
        ((key, _shown(before.get(key)), _shown(after.get(key))) for key in keys),
    )
    return format_html('<table class="audit-changes">{}</table>', rows)


def events_timeline(events: QuerySet[AuditEvent], *, limit: int = 200) -> str:
    """An HTML list of ``events``, newest first, for a person's or a record's admin page."""
    rows = list(events.order_by("-pk")[:limit])
    if not rows:
        return "No events yet."
    items = format_html_join(
        "",
        "<li><time>{}</time> <strong>{}</strong> by {} — {}</li>",
        (
            (
                f"{event.occurred_at:%Y-%m-%d %H:%M:%S}",
                event.action,
                event.actor_label,
                event.object_repr,
            )
            for event in rows
        ),
    )
    return format_html('<ol class="audit-timeline">{}</ol>', items)


def _shown(value: Any) -> str:
    return (
        "—" if value in (None, "") else json.dumps(value) if not isinstance(value, str) else value
    )
