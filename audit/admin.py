"""The audit trail in the admin: read-only for everyone, superusers included.

Also what other admins use to show and write events: ``events_timeline`` (a person's or a
record's events, in words) and ``AuditedSavesAdmin`` (an event for every add and change saved
through a ModelAdmin's form).
"""

from __future__ import annotations

import json
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.db.models import Model, QuerySet
from django.db.models.fields.files import FieldFile
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from audit.labels import ACTION_LABELS, action_label, detail_summary
from audit.models import AuditEvent
from audit.services import audit_record, snapshot
from portal.admin_filters import ScalableChangelist


class ActionFilter(admin.SimpleListFilter):
    """The actions in words (``ACTION_LABELS``): fixed choices, not a DISTINCT over every event.
    Same parameter as the field's own filter (``?action=consent.approve``)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return sorted(ACTION_LABELS.items(), key=lambda item: item[1])

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(action=self.value()) if self.value() else queryset


class ObjectTypeFilter(admin.SimpleListFilter):
    """The installed models (``app_label.modelname``, as events name them): fixed choices."""

    title = "object type"
    parameter_name = "object_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return sorted(
            (model._meta.label_lower, f"{model._meta.verbose_name} ({model._meta.label_lower})")
            for model in apps.get_models()
        )

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(object_type=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ScalableChangelist, admin.ModelAdmin):
    list_display = ("when", "by", "action", "what", "about", "request")
    # Fixed choices and no date hierarchy: both would scan every event to find their values
    # (1.6 million at 50,000 people); "occurred_at" offers fixed periods, on an index.
    list_filter = (ActionFilter, ObjectTypeFilter, "occurred_at")
    search_fields = ("action", "object_repr", "actor_label", "request_id", "=object_id")
    readonly_fields = (
        "when",
        "by",
        "action",
        "kind_of_record",
        "record_id",
        "about",
        "person",
        "changes",
        "detail_json",
        "request",
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

    # The columns and fields in users' words (the model's field names are developers').
    @admin.display(description="when", ordering="occurred_at")
    def when(self, event: AuditEvent) -> Any:
        return event.occurred_at

    @admin.display(description="by", ordering="actor_label")
    def by(self, event: AuditEvent) -> str:
        return event.actor_label

    @admin.display(description="about", ordering="object_repr")
    def about(self, event: AuditEvent) -> str:
        return event.object_repr or "—"

    @admin.display(description="kind of record")
    def kind_of_record(self, event: AuditEvent) -> str:
        return event.object_type

    @admin.display(description="record id")
    def record_id(self, event: AuditEvent) -> str:
        return event.object_id

    @admin.display(description="person id")
    def person(self, event: AuditEvent) -> Any:
        return event.person_id or "—"

    @admin.display(description="request id")
    def request(self, event: AuditEvent) -> str:
        return event.request_id or "—"

    @admin.display(description="before → after")
    def changes(self, event: AuditEvent) -> str:
        return changes_table(event)

    @admin.display(description="what happened", ordering="action")
    def what(self, event: AuditEvent) -> str:
        return action_label(event.action)

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


def events_timeline(events: QuerySet[AuditEvent], *, limit: int = 200, all_url: str = "") -> str:
    """An HTML list of ``events``, newest first, for a person's or a record's admin page.

    Each says when, what (in words, linking to the event), who, about what, and the fields it
    changed, before → after. One query, whatever the number of events; at most ``limit`` are
    shown, with a link to ``all_url`` (the audit trail, filtered) when there are more.
    """
    rows = list(events.order_by("-pk")[: limit + 1])
    if not rows:
        return "No events yet."
    items = format_html_join("", "{}", ((_timeline_item(event),) for event in rows[:limit]))
    more = ""
    if len(rows) > limit:
        more = format_html(
            '<p class="audit-more">Only the newest {} are shown: <a href="{}">all events</a>.</p>',
            limit,
            all_url or reverse("admin:audit_auditevent_changelist"),
        )
    return format_html('<ol class="audit-timeline">{}</ol>{}', items, more)


def _timeline_item(event: AuditEvent) -> str:
    url = reverse("admin:audit_auditevent_change", args=[event.pk])
    changes = changes_table(event)
    return format_html(
        '<li><time datetime="{}">{}</time><span class="event"><a href="{}">{}</a></span>'
        '<span class="detail">by {} · {}{}</span>{}</li>',
        event.occurred_at.isoformat(),
        f"{timezone.localtime(event.occurred_at):%Y-%m-%d %H:%M:%S}",
        url,
        action_label(event.action),
        event.actor_label,
        event.object_repr or "—",
        format_html(" · {}", summary) if (summary := detail_summary(event.detail)) else "",
        format_html('<div class="detail">{}</div>', changes) if changes != "—" else "",
    )


def _shown(value: Any) -> str:
    return (
        "—" if value in (None, "") else json.dumps(value) if not isinstance(value, str) else value
    )


class AuditedSavesAdmin(admin.ModelAdmin):
    """Writes an event for every add (``<audit_prefix>.created``) and change
    (``<audit_prefix>.<audit_change_action>``) saved through this admin's form, in the form's
    transaction: the fields it set or changed, before and after, and what its inlines added,
    changed or deleted. A save that changed nothing writes nothing.
    """

    audit_prefix: str
    audit_change_action = "changed"

    def audit_person_id(self, obj: Any) -> int | None:
        """The person an event about ``obj`` concerns."""
        return getattr(obj, "person_id", None)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj = form.instance
        names = _model_fields(form, form.changed_data if change else list(form.fields))
        inlines = {
            str(formset.model._meta.verbose_name_plural): changed
            for formset in formsets
            if (changed := _inline_changes(formset))
        }
        if change and not names and not inlines:
            return
        audit_record(
            action=f"{self.audit_prefix}.{self.audit_change_action if change else 'created'}",
            obj=obj,
            actor=request.user,
            person_id=self.audit_person_id(obj),
            before=_initial_values(form, names) if change else None,
            after=snapshot(obj, names),
            detail={"inlines": inlines} if inlines else None,
        )


def _model_fields(form: ModelForm[Any], names: list[str]) -> list[str]:
    """Those of ``names`` that are concrete fields of the form's model."""
    concrete = {field.name for field in form._meta.model._meta.concrete_fields}  # type: ignore[union-attr]
    return [name for name in names if name in concrete]


def _initial_values(form: ModelForm[Any], names: list[str]) -> dict[str, Any]:
    """The values ``names`` had before the form changed them, keyed as ``snapshot`` keys them."""
    values: dict[str, Any] = {}
    for name in names:
        field = form.instance._meta.get_field(name)
        value = form.initial.get(name)
        if isinstance(value, FieldFile):
            value = value.name or ""
        elif isinstance(value, Model):
            value = value.pk
        values[field.attname if field.is_relation else field.name] = value  # type: ignore[union-attr]
    return values


def _inline_changes(formset: BaseFormSet[Any]) -> dict[str, list[str]]:
    """What a saved inline formset added, changed (with the fields) and deleted, in words."""
    changes = {
        "added": [str(obj) for obj in getattr(formset, "new_objects", [])],
        "changed": [
            f"{obj} ({', '.join(fields)})"
            for obj, fields in getattr(formset, "changed_objects", [])
        ],
        "deleted": [str(obj) for obj in getattr(formset, "deleted_objects", [])],
    }
    return {key: value for key, value in changes.items() if value}
