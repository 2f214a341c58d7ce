"""Admin for people, their consent records and their verification sessions.

Onboarding staff create people and record consent here. Review, revocation and invitations are
workflows with rules of their own (later services): their fields are shown, never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Exists,
    F,
    Field,
    Func,
    IntegerField,
    Model,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assets.admin import asset_file, asset_reference, asset_state, measured, upload_view
from assets.models import Asset, AssetGroup
from audit.services import audit_record
from consent import services
from consent.documents import ACCEPT_ATTRIBUTE, document_rules
from consent.exports import consent_records_csv
from consent.forms import ApproveForm, RejectForm, RevokeForm
from consent.models import (
    ConsentRecord,
    ConsentUse,
    Person,
    VerificationSession,
)
from consent.services import (
    CONSENT_TRANSITIONS,
    consent_problems,
    consent_red_flags,
    consent_version_differences,
)
from portal.admin_helpers import (
    KeepRows,
    PrivateFileAdmin,
    ReadOnlyInline,
    StatusColumn,
    status_badge,
)

_SYSTEM_FIELDS = ("created_by", "created_at", "updated_at")


def _count(rows: QuerySet[Any]) -> Coalesce:
    """``COUNT(*)`` of ``rows`` (correlated to the outer row) as an annotation."""
    # COUNT as a plain function, not an aggregate: Django would otherwise add a GROUP BY.
    counted = rows.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def may_view(admin_site: admin.AdminSite, request: HttpRequest, model: type[Model]) -> bool:
    """Whether the user may view ``model``'s rows in the admin (its own ModelAdmin decides)."""
    return admin_site.is_registered(model) and admin_site.get_model_admin(
        model
    ).has_view_permission(request)


class CreatedByAdmin(StatusColumn, admin.ModelAdmin):
    """Records who added a row."""

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


# Django shows an inline only to users who may view (or change) the inline's own model
# (InlineModelAdmin.has_view_permission); every field below is one of that model's own.
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
        "consent_in_force",
        "consent_count",
        "active_asset_count",
        "created_at",
    )
    list_filter = ("preferred_language", "created_at")
    search_fields = ("legal_name", "display_name", "email", "phone")
    readonly_fields = ("consents_in_force", "asset_list", *_SYSTEM_FIELDS)
    fieldsets = (
        (None, {"fields": ("legal_name", "display_name", "preferred_language")}),
        ("Contact", {"fields": ("email", "phone", "notes")}),
        ("Consent in force today", {"fields": ("consents_in_force",)}),
        ("Assets", {"fields": ("asset_list",)}),
        ("System", {"classes": ("collapse",), "fields": _SYSTEM_FIELDS}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Person]:
        # Each count in its own subquery: joining consent records and assets in one query would
        # multiply them per person before counting.
        consents = ConsentRecord.objects.filter(person=OuterRef("pk"))
        active_assets = Asset.objects.active().filter(group__person=OuterRef("pk"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                in_force=Exists(ConsentRecord.objects.in_force().filter(person=OuterRef("pk"))),
                consent_count=_count(consents),
                active_asset_count=_count(active_assets),
            )
        )

    # Columns that show other models' data, and the models a user must be allowed to view.
    _column_models: dict[str, tuple[type[Model], ...]] = {
        "consent_in_force": (ConsentRecord,),
        "consents_in_force": (ConsentRecord,),
        "consent_count": (ConsentRecord,),
        "active_asset_count": (Asset,),
        # asset_list shows each asset's group id beside its reference and file.
        "asset_list": (Asset, AssetGroup),
    }

    def _may_view_column(self, request: HttpRequest, column: str) -> bool:
        models = self._column_models.get(column, ())
        return all(may_view(self.admin_site, request, model) for model in models)

    def get_list_display(self, request: HttpRequest) -> Any:
        return [column for column in self.list_display if self._may_view_column(request, column)]

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        hidden = {
            field for field in self._column_models if not self._may_view_column(request, field)
        }
        if obj is None:
            hidden.add("asset_list")  # a new person has no assets yet
        return [fieldset for fieldset in self.fieldsets if hidden.isdisjoint(fieldset[1]["fields"])]

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

    @admin.display(description="consent in force", boolean=True, ordering="in_force")
    def consent_in_force(self, person: Person) -> bool:
        return person.in_force  # type: ignore[attr-defined]

    @admin.display(description="in force today")
    def consents_in_force(self, person: Person) -> str:
        """The approved records whose period includes today (not merely the latest made)."""
        records = ConsentRecord.objects.in_force().filter(person=person).prefetch_related("uses")
        rows = format_html_join(
            mark_safe("<br>"),
            '<a href="{}">{}</a>: {}, until {}',
            (
                (
                    reverse("admin:consent_consentrecord_change", args=[record.pk]),
                    record,
                    ", ".join(record.media_types()),
                    record.expires_on or "no end date",
                )
                for record in records
            ),
        )
        return rows or "None: nothing may be uploaded or used for this person."

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


class ConsentUseInline(admin.StackedInline):
    """The specific uses of a consent record: edited in a draft, read-only ever after."""

    model = ConsentUse
    extra = 0
    fields = (("project", "medium"), ("channels", "territory", "languages"), "description")

    def _draft(self, obj: ConsentRecord | None) -> bool:
        return obj is None or obj.is_editable

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._draft(obj) and super().has_delete_permission(request, obj)

    def get_extra(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> int:
        return 1 if obj is None else 0


@dataclass(frozen=True)
class LifecycleAction:
    """One admin action of the consent lifecycle and its confirmation page."""

    name: str
    title: str
    button: str
    past: str
    permission: str
    form: type[forms.Form] | None = None


_LIFECYCLE_ACTIONS = {
    "submit": LifecycleAction(
        "submit_for_review", "Submit for review", "Submit", "submitted", "change"
    ),
    "approve": LifecycleAction(
        "approve_records", "Approve", "Approve", "approved", "review", ApproveForm
    ),
    "reject": LifecycleAction(
        "reject_records", "Reject", "Reject", "rejected", "review", RejectForm
    ),
    "revoke": LifecycleAction(
        "revoke_consent", "Revoke consent", "Revoke", "revoked", "revoke", RevokeForm
    ),
}


@admin.register(ConsentRecord)
class ConsentRecordAdmin(KeepRows, PrivateFileAdmin, CreatedByAdmin):
    """Consent records and their lifecycle (``consent.services``): drafts are edited here,
    everything after goes through the actions, and an approved record never changes."""

    private_file_field = "signed_document"
    inlines = (ConsentUseInline,)
    actions = ("submit_for_review", "approve_records", "reject_records", "revoke_consent")
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
        "allows_model_training",
        "starts_on",
        "expires_on",
    )
    search_fields = (
        "person__legal_name",
        "person__display_name",
        "person__email",
        "consent_text_version",
        "projects",
        "uses__project",
    )
    autocomplete_fields = ("person",)
    date_hierarchy = "created_at"
    _review_fields = (
        "status_badge",
        "red_flags",
        "submitted_by",
        "submitted_at",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "revoked_at",
        "revoked_by",
        "revocation_channel",
        "revocation_requested_at",
        "revocation_reason",
        "ended_at",
    )
    _readonly_always = ("private_file_link", "version_history", *_review_fields, *_SYSTEM_FIELDS)
    _terms_fieldsets = (
        (None, {"fields": ("person", "consent_text_version", "capture_method")}),
        (
            "Consent text",
            {"fields": (("consent_text_sha256", "consent_text_language"),)},
        ),
        (
            "Likeness and media",
            {
                "fields": (
                    ("likeness_face", "likeness_body", "likeness_voice"),
                    ("covers_images", "covers_video", "covers_audio"),
                )
            },
        ),
        (
            "Scope",
            {
                "fields": (
                    "intended_uses",
                    "projects",
                    "territory",
                    ("starts_on", "expires_on"),
                    "permitted_alterations",
                    "prohibited_uses",
                    "allows_model_training",
                    "compensation_reference",
                )
            },
        ),
        (
            "Representation and capacity",
            {
                "fields": (
                    ("representation", "representative_name"),
                    ("is_minor", "guardian_name", "guardian_relationship"),
                    ("biometric_notice_accepted", "retention_policy_accepted"),
                )
            },
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # A signed document, once attached, is evidence: it is shown, never replaced.
        document = "private_file_link" if obj and obj.signed_document else "signed_document"
        return (
            *self._terms_fieldsets,
            ("Signed document", {"fields": (document,)}),
            ("Review", {"fields": self._review_fields}),
            ("Versions", {"fields": ("version_history",)}),
            ("System", {"classes": ("collapse",), "fields": _SYSTEM_FIELDS}),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return self._readonly_always
        return ("person", *self._readonly_always)  # a record never moves to another person

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Submitted: every term is evidence now, shown read-only; the actions move it on.
        if obj is not None and not obj.is_editable:
            return False
        return super().has_change_permission(request, obj)

    def get_urls(self) -> list[URLPattern]:
        compare = self.admin_site.admin_view(self.compare_view)
        export = self.admin_site.admin_view(self.export_csv_view)
        return [
            path("export.csv", export, name="consent_consentrecord_export_csv"),
            path("<path:object_id>/compare/", compare, name="consent_consentrecord_compare"),
            *super().get_urls(),
        ]

    def export_csv_view(self, request: HttpRequest) -> HttpResponse:
        """The changelist as filtered (same query string), as a CSV file; the export is audited."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        records = changelist.get_queryset(request).select_related("person", "reviewed_by")
        records = records.prefetch_related("uses")
        body = consent_records_csv(records)
        audit_record(
            action="consent.exported_csv",
            obj=None,
            actor=request.user,
            detail={"filters": request.GET.urlencode(), "records": len(records)},
        )
        response = HttpResponse(body, content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="consent-records-{stamp}.csv"'
        response["Cache-Control"] = "private, no-store"
        return response

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        record = self.get_object(request, unquote(object_id))
        buttons = []
        if record is not None:
            buttons = [
                (action.name, action.title)
                for transition, action in _LIFECYCLE_ACTIONS.items()
                if record.status in CONSENT_TRANSITIONS[transition][0]
                and self._may(request, action)
            ]
        context = {**(extra_context or {}), "lifecycle_buttons": buttons}
        return super().change_view(request, object_id, form_url, context)

    # --- Lifecycle actions ---------------------------------------------------------------------

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("consent.review_consentrecord")

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("consent.revoke_consentrecord")

    @admin.action(description="Submit for review", permissions=["change"])
    def submit_for_review(self, request: HttpRequest, queryset: QuerySet[ConsentRecord]) -> Any:
        return self._lifecycle(request, queryset, "submit")

    @admin.action(description="Approve", permissions=["review"])
    def approve_records(self, request: HttpRequest, queryset: QuerySet[ConsentRecord]) -> Any:
        return self._lifecycle(request, queryset, "approve")

    @admin.action(description="Reject", permissions=["review"])
    def reject_records(self, request: HttpRequest, queryset: QuerySet[ConsentRecord]) -> Any:
        return self._lifecycle(request, queryset, "reject")

    @admin.action(description="Revoke consent", permissions=["revoke"])
    def revoke_consent(self, request: HttpRequest, queryset: QuerySet[ConsentRecord]) -> Any:
        return self._lifecycle(request, queryset, "revoke")

    def _may(self, request: HttpRequest, action: LifecycleAction) -> bool:
        return bool(getattr(self, f"has_{action.permission}_permission")(request))

    def _lifecycle(
        self, request: HttpRequest, queryset: QuerySet[ConsentRecord], transition: str
    ) -> TemplateResponse | None:
        """Show each record's problems and red flags; on confirmation, run the service."""
        action = _LIFECYCLE_ACTIONS[transition]
        allowed_from = CONSENT_TRANSITIONS[transition][0]
        records = list(queryset.select_related("person").prefetch_related("uses"))
        entries = [self._entry(record, transition, allowed_from) for record in records]
        ready = [entry["record"] for entry in entries if not entry["problems"]]
        posted = "confirm" in request.POST
        form = action.form(request.POST if posted else None) if action.form else None
        # Without a form to fill in, a selection with nothing to explain needs no confirmation.
        confirmed = posted or (form is None and len(ready) == len(records))
        if confirmed and ready and (form is None or form.is_valid()):
            self._apply(request, ready, transition, form.cleaned_data if form else {})
            return None
        return TemplateResponse(
            request,
            "admin/consent/consentrecord/lifecycle_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"{action.title}: {len(records)} consent record(s)",
                "entries": entries,
                "ready": ready,
                "form": form,
                "action": action.name,
                "button": action.button,
                "past": action.past,
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def _entry(
        self, record: ConsentRecord, transition: str, allowed_from: frozenset[str]
    ) -> dict[str, Any]:
        if record.status not in allowed_from:
            problems = [f"it is {record.get_status_display().lower()}"]
        elif transition in ("submit", "approve"):
            problems = consent_problems(record)
        else:
            problems = []
        flags = consent_red_flags(record) if transition in ("submit", "approve") else []
        summary = (
            f"{', '.join(record.likeness_elements())} · {', '.join(record.media_types())} · "
            f"{record.starts_on} to {record.expires_on or 'no end date'} · "
            f"{len(record.uses.all())} use(s)"
        )
        return {"record": record, "problems": problems, "flags": flags, "summary": summary}

    def _apply(
        self,
        request: HttpRequest,
        records: list[ConsentRecord],
        transition: str,
        data: dict[str, Any],
    ) -> None:
        done = 0
        for record in records:
            try:
                if transition == "submit":
                    services.consent_submit(record=record, actor=request.user)
                elif transition == "approve":
                    services.consent_approve(record=record, actor=request.user, note=data["note"])
                elif transition == "reject":
                    services.consent_reject(
                        record=record, actor=request.user, reason=data["reason"]
                    )
                else:
                    services.consent_revoke(
                        record=record,
                        actor=request.user,
                        channel=data["channel"],
                        reason=data["reason"],
                        requested_at=data["requested_at"],
                    )
            except services.ConsentTransitionError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                done += 1
        if done:
            past = _LIFECYCLE_ACTIONS[transition].past
            self.message_user(request, f"{done} consent record(s) {past}.", messages.SUCCESS)

    # --- Versions ------------------------------------------------------------------------------

    @admin.display(description="red flags")
    def red_flags(self, record: ConsentRecord) -> str:
        flags = consent_red_flags(record) if record.pk else []
        if not flags:
            return "—"
        return format_html(
            "<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((f,) for f in flags))
        )

    @admin.display(description="versions")
    def version_history(self, record: ConsentRecord) -> str:
        """Links to the version this one replaces and the versions that replace it."""
        links = []
        if record.supersedes_id:
            compare = reverse("admin:consent_consentrecord_compare", args=[record.pk])
            links.append(
                format_html(
                    'Replaces <a href="{}">{}</a> (<a href="{}">compare</a>)',
                    reverse("admin:consent_consentrecord_change", args=[record.supersedes_id]),
                    record.supersedes,
                    compare,
                )
            )
        for later in record.superseded_by.all() if record.pk else []:
            links.append(
                format_html(
                    'Replaced by <a href="{}">{}</a>',
                    reverse("admin:consent_consentrecord_change", args=[later.pk]),
                    later,
                )
            )
        return format_html_join(mark_safe("<br>"), "{}", ((link,) for link in links)) or "—"

    def compare_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The record beside the version it supersedes, term by term."""
        record = self.get_object(request, unquote(object_id))
        if record is None or record.supersedes is None:
            raise Http404("This record does not replace an earlier version.")
        if not self.has_view_permission(request, record):
            raise PermissionDenied
        rows = consent_version_differences(earlier=record.supersedes, current=record)
        return TemplateResponse(
            request,
            "admin/consent/consentrecord/compare.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": "Compare versions",
                "record": record,
                "earlier": record.supersedes,
                "rows": rows,
                "changed_count": sum(row["changed"] for row in rows),
            },
        )

    def formfield_for_dbfield(self, db_field: Field, request: HttpRequest, **kwargs: Any) -> Any:
        formfield = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "signed_document" and formfield is not None:
            # The model field's validator (consent.documents) checks the bytes; this only guides.
            formfield.help_text = f"{document_rules()}: a scan or export of the signed consent."
            formfield.widget.attrs["accept"] = ACCEPT_ATTRIBUTE
        return formfield

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
