"""Admin for people, their consent records, their invitations to verification and the upstream
sessions made from those.

Onboarding staff create people and record consent here, and invite people to real-person
verification ("Invite to verify"), show the invitation's QR code or verify them at the desk
("Verify here now"). Those workflows are services (``consent.services``), reached through
``consent.admin_views``; their status fields are shown, never typed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import (
    Exists,
    F,
    Field,
    Func,
    IntegerField,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assets.admin import (
    asset_file,
    asset_reference,
    asset_state,
    may_open_asset_files,
    measured,
    upload_view,
    withdrawals_table,
)
from assets.models import Asset, AssetGroup, Withdrawal
from audit.admin import AuditedSavesAdmin, events_timeline
from audit.models import AuditEvent
from audit.services import audit_record
from consent import admin_views, evidence, services
from consent.admin_views import Outcome, VerificationState, invitation_admin_url
from consent.documents import ACCEPT_ATTRIBUTE, document_rules
from consent.exports import consent_records_csv
from consent.forms import ApproveForm, LegalHoldForm, RejectForm, RevokeForm
from consent.models import (
    ConsentRecord,
    ConsentUse,
    OutboundEmail,
    Person,
    UpstreamVerification,
    VerificationSession,
    VerificationStatus,
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


def _post_only(request: HttpRequest) -> HttpResponse | None:
    """A 405 for anything but POST (operations change rows; a GET never does)."""
    return None if request.method == "POST" else HttpResponseNotAllowed(["POST"])


def _report(model_admin: admin.ModelAdmin[Any], request: HttpRequest, outcome: Outcome) -> None:
    model_admin.message_user(request, outcome.message, outcome.level)


# Django shows an inline only to users who may view (or change) the inline's own model
# (InlineModelAdmin.has_view_permission); every field below is one of that model's own.
class ConsentRecordInline(ReadOnlyInline):
    model = ConsentRecord
    fields = ("consent_text_version", "status_badge", "starts_on", "expires_on", "created_at")
    readonly_fields = fields


class VerificationSessionInline(ReadOnlyInline):
    model = VerificationSession
    fk_name = "person"
    fields = ("status_badge", "created_at", "expires_at", "verified_at")
    readonly_fields = fields


class AssetGroupInline(ReadOnlyInline):
    model = AssetGroup
    fields = ("group_id", "group_type", "status_badge", "created_at")
    readonly_fields = fields


class VerificationStateFilter(admin.SimpleListFilter):
    """People by where their verification stands (their latest invitation), in the changelist's
    own query (``verification_state`` is annotated by ``PersonAdmin.get_queryset``)."""

    title = "verification"
    parameter_name = "verification"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(VerificationState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value not in VerificationState.values:
            return queryset
        return queryset.filter(verification_state=value)


@admin.register(Person)
class PersonAdmin(AuditedSavesAdmin, CreatedByAdmin):
    list_display = (
        "legal_name",
        "display_name",
        "email",
        "preferred_language",
        "consent_in_force",
        "verification",
        "consent_count",
        "active_asset_count",
        "created_at",
    )
    list_filter = (VerificationStateFilter, "preferred_language", "created_at")
    search_fields = ("legal_name", "display_name", "email", "phone")
    readonly_fields = (
        "consents_in_force",
        "verification_timeline",
        "asset_list",
        "asset_list_without_files",
        "withdrawal_list",
        "legal_hold",
        "legal_hold_note",
        "audit_timeline",
        *_SYSTEM_FIELDS,
    )
    fieldsets = (
        (None, {"fields": ("legal_name", "display_name", "preferred_language")}),
        ("Contact", {"fields": ("email", "phone", "notes")}),
        ("Consent in force today", {"fields": ("consents_in_force",)}),
        ("Verification", {"fields": ("verification_timeline",)}),
        ("Assets", {"fields": ("asset_list",)}),
        ("Withdrawals upstream", {"fields": ("withdrawal_list",)}),
        ("Retention", {"fields": ("legal_hold", "legal_hold_note")}),
        ("Audit trail", {"classes": ("collapse",), "fields": ("audit_timeline",)}),
        ("System", {"classes": ("collapse",), "fields": _SYSTEM_FIELDS}),
    )
    actions = ("invite_to_verify", "place_legal_hold", "lift_legal_hold", "export_evidence_bundle")
    audit_prefix = "person"
    change_form_template = "admin/consent/person/change_form.html"

    class Media:
        css = {"all": ("consent/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Person]:
        # Each count in its own subquery: joining consent records and assets in one query would
        # multiply them per person before counting.
        consents = ConsentRecord.objects.filter(person=OuterRef("pk"))
        active_assets = Asset.objects.active().filter(group__person=OuterRef("pk"))
        people = (
            super()
            .get_queryset(request)
            .annotate(
                in_force=Exists(ConsentRecord.objects.in_force().filter(person=OuterRef("pk"))),
                consent_count=_count(consents),
                active_asset_count=_count(active_assets),
            )
        )
        return admin_views.with_verification_state(people)

    # Columns that show other models' data, and the models a user must be allowed to view.
    _column_models: dict[str, tuple[type[Model], ...]] = {
        "consent_in_force": (ConsentRecord,),
        "consents_in_force": (ConsentRecord,),
        "consent_count": (ConsentRecord,),
        "verification": (VerificationSession,),
        "verification_timeline": (VerificationSession,),
        "active_asset_count": (Asset,),
        # asset_list shows each asset's group id beside its reference and file.
        "asset_list": (Asset, AssetGroup),
        "asset_list_without_files": (Asset, AssetGroup),
        "withdrawal_list": (Withdrawal,),
        "audit_timeline": (AuditEvent,),
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
        if obj is None:  # a new person has no invitations, assets, withdrawals nor events yet
            hidden.update(
                {"verification_timeline", "asset_list", "withdrawal_list", "audit_timeline"}
            )
        fieldsets = [
            fieldset for fieldset in self.fieldsets if hidden.isdisjoint(fieldset[1]["fields"])
        ]
        if may_open_asset_files(request):
            return fieldsets
        # The same list of assets, without links to their original files.
        return [
            (title, {**options, "fields": tuple(_without_files(f) for f in options["fields"])})
            for title, options in fieldsets
        ]

    def get_urls(self) -> list[URLPattern]:
        invite = self.admin_site.admin_view(self.invite_view)
        upload = self.admin_site.admin_view(self.upload_assets_view)
        return [
            path("<path:object_id>/invite/", invite, name="consent_person_invite"),
            path("<path:object_id>/upload-assets/", upload, name="consent_person_upload_assets"),
            *super().get_urls(),
        ]

    def has_invite_permission(self, request: HttpRequest) -> bool:
        """Inviting makes an invitation: it takes the permission to add one."""
        return request.user.has_perm("consent.add_verificationsession")

    def has_export_evidence_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("consent.export_evidence")

    def audit_person_id(self, obj: Person) -> int | None:
        return obj.pk

    @admin.action(description="Export evidence bundle", permissions=["export_evidence"])
    def export_evidence_bundle(
        self, request: HttpRequest, queryset: QuerySet[Person]
    ) -> FileResponse | None:
        """One person's evidence bundle (``consent.evidence``), as a ZIP download."""
        people = list(queryset[:2])
        if len(people) != 1:
            self.message_user(
                request, "Select one person: a bundle holds one person's evidence.", messages.ERROR
            )
            return None
        bundle = evidence.person_export_evidence(person=people[0], actor=request.user)
        response = FileResponse(
            bundle.file,
            as_attachment=True,
            filename=bundle.filename,
            content_type="application/zip",
        )
        response["Cache-Control"] = "private, no-store"
        return response

    @admin.display(description="events")
    def audit_timeline(self, person: Person) -> str:
        """Everything recorded about the person, newest first."""
        changelist = reverse("admin:audit_auditevent_changelist")
        return events_timeline(
            AuditEvent.objects.filter(person_id=person.pk),
            all_url=f"{changelist}?person_id={person.pk}",
        )

    @admin.action(description="Invite to verify", permissions=["invite"])
    def invite_to_verify(
        self, request: HttpRequest, queryset: QuerySet[Person]
    ) -> HttpResponse | None:
        """Invite each selected person; with one person, go on to their invitation's QR page."""
        outcomes = [admin_views.invite(request, person) for person in queryset]
        for outcome in outcomes:
            _report(self, request, outcome)
        if len(outcomes) == 1 and outcomes[0].invitation is not None:
            return HttpResponseRedirect(invitation_admin_url(outcomes[0].invitation, "qr"))
        return None

    def has_legal_hold_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("consent.legal_hold_person")

    @admin.action(description="Place on legal hold (keep their biometric media)",
                  permissions=["legal_hold"])  # fmt: skip
    def place_legal_hold(self, request: HttpRequest, queryset: QuerySet[Person]) -> Any:
        return self._legal_hold(request, queryset, hold=True)

    @admin.action(description="Lift the legal hold", permissions=["legal_hold"])
    def lift_legal_hold(self, request: HttpRequest, queryset: QuerySet[Person]) -> Any:
        return self._legal_hold(request, queryset, hold=False)

    def _legal_hold(
        self, request: HttpRequest, queryset: QuerySet[Person], *, hold: bool
    ) -> TemplateResponse | None:
        """Ask for the reason, then place or lift the hold (``services.person_set_legal_hold``)."""
        form = LegalHoldForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            done = 0
            for person in queryset:
                try:
                    services.person_set_legal_hold(
                        person=person, hold=hold, actor=request.user, note=form.cleaned_data["note"]
                    )
                except ValidationError as refused:
                    self.message_user(request, " ".join(refused.messages), messages.WARNING)
                else:
                    done += 1
            verb = "placed on legal hold" if hold else "released from legal hold"
            if done:
                self.message_user(request, f"{done} person(s) {verb}.", messages.SUCCESS)
            return None
        title = "Place on legal hold" if hold else "Lift the legal hold"
        return TemplateResponse(
            request,
            "admin/consent/person/legal_hold.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"{title}: {queryset.count()} person(s)",
                "people": list(queryset),
                "hold": hold,
                "form": form,
                "action": "place_legal_hold" if hold else "lift_legal_hold",
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            },
        )

    def invite_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The person page's "Invite to verify" button (POST)."""
        if refused := _post_only(request):
            return refused
        person = self.get_object(request, unquote(object_id))
        if person is None:
            raise Http404("No such person.")
        if not (self.has_view_permission(request, person) and self.has_invite_permission(request)):
            raise PermissionDenied
        outcome = admin_views.invite(request, person)
        _report(self, request, outcome)
        if outcome.invitation is not None:
            return HttpResponseRedirect(invitation_admin_url(outcome.invitation, "qr"))
        return HttpResponseRedirect(reverse("admin:consent_person_change", args=[person.pk]))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None:
            current = obj.verification_sessions.open().first()
            context.update(
                can_export_evidence=self.has_export_evidence_permission(request),
                can_invite=self.has_invite_permission(request) and current is None,
                invite_url=reverse("admin:consent_person_invite", args=[obj.pk]),
                open_invitation=current,
                open_invitation_qr_url=current and invitation_admin_url(current, "qr"),
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="verification", ordering="verification_state")
    def verification(self, person: Person) -> str:
        return admin_views.verification_state_badge(person.verification_state)  # type: ignore[attr-defined]

    @admin.display(description="timeline")
    def verification_timeline(self, person: Person) -> str:
        """Every invitation of the person, newest first, each with its timeline."""
        invitations = list(
            person.verification_sessions.select_related("person", "created_by", "ended_by")
        )
        return render_to_string(
            "admin/consent/timeline.html",
            {"invitations": admin_views.timeline_context(invitations), "show_headings": True},
        )

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        if obj is None:
            return ()
        return (ConsentRecordInline, VerificationSessionInline, AssetGroupInline)

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

    @admin.display(description="withdrawals")
    def withdrawal_list(self, person: Person) -> str:
        """Every withdrawal of the person's consents, with how far the upstream confirmed it."""
        return withdrawals_table(Withdrawal.objects.filter(person=person))

    @admin.display(description="assets")
    def asset_list(self, person: Person) -> str:
        """Every asset in the person's groups, with its reference and file."""
        return _asset_table(person, with_files=True)

    @admin.display(description="assets")
    def asset_list_without_files(self, person: Person) -> str:
        """``asset_list`` for staff who may not open original files (``may_open_asset_files``)."""
        return _asset_table(person, with_files=False)


def _without_files(field: Any) -> Any:
    return "asset_list_without_files" if field == "asset_list" else field


def _asset_table(person: Person, *, with_files: bool) -> str:
    """Every asset in the person's groups with its state and reference, and with a link to its
    original file when ``with_files``."""
    assets = Asset.objects.filter(group__person=person).select_related("group", "consent")
    rows = format_html_join("", "<tr>{}</tr>", ((_asset_row(a, with_files),) for a in assets))
    if not rows:
        return "—"
    columns = ["asset", "group", "status", "state", "reference", "measured"]
    columns += ["file"] if with_files else []
    head = format_html_join("", "<th>{}</th>", ((column,) for column in columns))
    return format_html(
        '<table class="asset-list"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>', head, rows
    )


def _asset_row(asset: Asset, with_files: bool) -> str:
    change_url = reverse("admin:assets_asset_change", args=[asset.pk])
    cells = [
        format_html("<a href='{}'>{}</a>", change_url, asset),
        asset.group,
        status_badge(asset),
        asset_state(asset),
        asset_reference(asset),
        measured(asset),
    ]
    if with_files:
        cells.append(asset_file(asset))
    return format_html_join("", "<td>{}</td>", ((cell,) for cell in cells))


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
class ConsentRecordAdmin(KeepRows, AuditedSavesAdmin, PrivateFileAdmin, CreatedByAdmin):
    """Consent records and their lifecycle (``consent.services``): drafts are edited here,
    everything after goes through the actions, and an approved record never changes."""

    private_file_field = "signed_document"
    audit_prefix = "consent"
    audit_change_action = "draft_changed"  # only a draft is edited
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
    _review_fields = ("status_badge", "red_flags", *ConsentRecord.LIFECYCLE_FIELDS)
    _readonly_always = (
        "private_file_link",
        "version_history",
        "withdrawal_record",
        "audit_timeline",
        *_review_fields,
        *_SYSTEM_FIELDS,
    )
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
        audit = (
            [("Audit trail", {"classes": ("collapse",), "fields": ("audit_timeline",)})]
            if obj is not None and may_view(self.admin_site, request, AuditEvent)
            else []
        )
        return (
            *self._terms_fieldsets,
            ("Signed document", {"fields": (document,)}),
            ("Review", {"fields": self._review_fields}),
            *(
                [("Withdrawal upstream", {"fields": ("withdrawal_record",)})]
                if obj is not None and may_view(self.admin_site, request, Withdrawal)
                else []
            ),
            ("Versions", {"fields": ("version_history",)}),
            *audit,
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

    def export_csv_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The changelist as filtered (same query string), as a CSV file; the export is audited."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        records = self.get_changelist_instance(request).get_queryset(request)
        audit_record(
            action="consent.exported_csv",
            obj=None,
            actor=request.user,
            detail={"filters": request.GET.urlencode(), "records": records.count()},
        )
        response = StreamingHttpResponse(
            consent_records_csv(records), content_type="text/csv; charset=utf-8"
        )
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
        # What a reviewer weighs; a revocation is the person's decision, not a review.
        reviewing = transition in ("submit", "approve", "reject")
        flags = consent_red_flags(record) if reviewing else []
        summary = (
            f"{', '.join(record.likeness_elements())} · {', '.join(record.media_types())} · "
            f"{record.starts_on} to {record.expires_on or 'no end date'} · "
            f"{len(record.uses.all())} use(s)"
        )
        return {
            "record": record,
            "problems": problems,
            "flags": flags,
            "reviewing": reviewing,
            "summary": summary,
        }

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

    @admin.display(description="withdrawal")
    def withdrawal_record(self, record: ConsentRecord) -> str:
        """The withdrawal this record's end started, with the upstream's confirmations."""
        if record.pk is None:
            return "—"
        return withdrawals_table(Withdrawal.objects.filter(consent=record))

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

    @admin.display(description="events")
    def audit_timeline(self, record: ConsentRecord) -> str:
        """The record's events, its uses' and those of the versions beside it, newest first."""
        versions = [
            record.pk,
            record.supersedes_id,
            *record.superseded_by.values_list("pk", flat=True),
        ]
        uses = record.uses.values_list("pk", flat=True)
        events = AuditEvent.objects.filter(
            Q(
                object_type=ConsentRecord._meta.label_lower,
                object_id__in=[str(pk) for pk in versions if pk],
            )
            | Q(object_type=ConsentUse._meta.label_lower, object_id__in=[str(pk) for pk in uses])
        )
        return events_timeline(events)


def short_token(token: str | None) -> str:
    """A BytedToken as staff see it: its last six characters (the whole one is a credential)."""
    return f"…{token[-6:]}" if token else "—"


def masked(text: str, token: str | None) -> str:
    """``text`` (an H5 link, callback parameters) with ``token`` shortened wherever it appears."""
    return text.replace(token, short_token(token)) if token else text


class UpstreamSessionDisplay:
    """Columns of an upstream session shared by its inline and its own admin."""

    @admin.display(description="BytedToken")
    def token(self, row: UpstreamVerification) -> str:
        return short_token(row.byted_token)

    @admin.display(description="callback")
    def callback(self, row: UpstreamVerification) -> str:
        if row.callback_received_at is None:
            return "—"
        return f"resultCode={row.callback_result_code or '(none)'}"

    @admin.display(description="upstream's words")
    def upstream_words(self, row: UpstreamVerification) -> str:
        words = f"{row.last_error_code} {row.last_error}".strip()
        if not words:
            return "—"
        if not row.last_error_explanation:
            return words
        return format_html("{}<br><span class='help'>{}</span>", words, row.last_error_explanation)


class UpstreamVerificationInline(UpstreamSessionDisplay, ReadOnlyInline):
    model = UpstreamVerification
    verbose_name_plural = "upstream verification sessions (every attempt)"
    fields = (
        "created_at",
        "purpose",
        "status_badge",
        "token",
        "callback",
        "group_id",
        "attempts",
        "upstream_words",
    )
    readonly_fields = fields


class OutboundEmailInline(ReadOnlyInline):
    model = OutboundEmail
    show_change_link = False
    fields = ("created_at", "to", "template", "language", "status_badge", "sent_at", "attempts",
              "last_error")  # fmt: skip
    readonly_fields = fields


@admin.register(VerificationSession)
class VerificationSessionAdmin(KeepRows, CreatedByAdmin):
    """Invitations. They are made by "Invite to verify" on a person (never typed in here), and
    resent, cancelled, reissued and shown at the desk through ``consent.admin_views``.

    The invitation's link and code let whoever holds them verify as the person: only staff who
    may change invitations see them (the QR panel, the QR page, the desk).
    """

    list_display = (
        "person",
        "status_badge",
        "consent",
        "created_at",
        "expires_at",
        "verified_at",
    )
    list_select_related = ("person", "consent", "consent__person")
    list_filter = ("status", "created_at", "verified_at")
    search_fields = ("person__legal_name", "person__display_name", "person__email", "code")
    actions = ("resend_invitations", "cancel_invitations", "reissue_invitations")
    inlines = (UpstreamVerificationInline, OutboundEmailInline)
    change_form_template = "admin/consent/verificationsession/change_form.html"
    _status_fields = ("status_badge", "expires_at", "opened_at", "verified_at", "ended_at")
    _system_fields = ("ended_by", "replaced_by", *_SYSTEM_FIELDS)
    fieldsets = (
        (None, {"fields": ("person", "consent", *_status_fields)}),
        ("Verification", {"fields": ("timeline",)}),
        ("System", {"classes": ("collapse",), "fields": _system_fields}),
    )
    readonly_fields = ("person", "consent", "timeline", *_status_fields, *_system_fields)

    class Media:
        css = {"all": ("consent/admin.css",)}

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # "Invite to verify" on a person makes invitations, through the service

    def has_reissue_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Reissuing ends an invitation and makes another."""
        return self.has_change_permission(request, obj) and request.user.has_perm(
            "consent.add_verificationsession"
        )

    # --- Actions (the changelist) and buttons (the change page) ---

    def _run(
        self,
        request: HttpRequest,
        queryset: QuerySet[VerificationSession],
        operation: Callable[[HttpRequest, VerificationSession], Outcome],
    ) -> None:
        for invitation in queryset:
            _report(self, request, operation(request, invitation))

    @admin.action(description="Resend the invitation email", permissions=["change"])
    def resend_invitations(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._run(request, queryset, admin_views.resend)

    @admin.action(description="Cancel the invitation", permissions=["change"])
    def cancel_invitations(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._run(request, queryset, admin_views.cancel)

    @admin.action(description="Reissue the invitation (new link and code)", permissions=["reissue"])
    def reissue_invitations(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        self._run(request, queryset, admin_views.reissue)

    def get_urls(self) -> list[URLPattern]:
        def url(suffix: str, name: str, view: Callable[..., HttpResponse]) -> URLPattern:
            wrapped = self.admin_site.admin_view(view)
            return path(
                f"<path:object_id>/{suffix}/", wrapped, name=f"consent_verificationsession_{name}"
            )

        return [
            url("qr", "qr", self.qr_view),
            url("desk", "desk", self.desk_view),
            url("desk/mint", "desk_mint", self.desk_mint_view),
            url("desk/status", "desk_status", self.desk_status_view),
            url("resend", "resend", self.operation_view(admin_views.resend, "change")),
            url("cancel", "cancel", self.operation_view(admin_views.cancel, "change")),
            url("reissue", "reissue", self.operation_view(admin_views.reissue, "reissue")),
            *super().get_urls(),
        ]

    def _invitation(self, request: HttpRequest, object_id: str, permission: str) -> Any:
        """The invitation ``object_id`` if the user has ``permission`` on it (else 403, 404)."""
        invitation = self.get_object(request, unquote(object_id))
        if invitation is None:
            raise Http404("No such invitation.")
        if not getattr(self, f"has_{permission}_permission")(request, invitation):
            raise PermissionDenied
        return invitation

    def operation_view(
        self, operation: Callable[[HttpRequest, VerificationSession], Outcome], permission: str
    ) -> Callable[[HttpRequest, str], HttpResponse]:
        """A POST view running ``operation`` on one invitation, back to the (new) invitation."""

        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            if refused := _post_only(request):
                return refused
            invitation = self._invitation(request, object_id, permission)
            outcome = operation(request, invitation)
            _report(self, request, outcome)
            return HttpResponseRedirect(invitation_admin_url(outcome.invitation or invitation))

        return view

    def qr_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invitation = self._invitation(request, object_id, "change")
        return admin_views.qr_page(self, request, invitation)

    def desk_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        invitation = self._invitation(request, object_id, "change")
        if not invitation.is_open:
            self.message_user(
                request,
                f"This invitation is {invitation.get_status_display().lower()}: "
                "there is nobody to verify with it.",
                messages.WARNING,
            )
            return HttpResponseRedirect(invitation_admin_url(invitation))
        return admin_views.desk_page(self, request, invitation)

    def desk_mint_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if refused := _post_only(request):
            return refused
        return admin_views.desk_mint(request, self._invitation(request, object_id, "change"))

    def desk_status_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return admin_views.desk_status(request, self._invitation(request, object_id, "view"))

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        if obj is not None:
            context.update(self._panel(request, obj))
        # Every field is read-only: there is nothing to save.
        context.update(show_save=False, show_save_and_continue=False)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _panel(self, request: HttpRequest, invitation: VerificationSession) -> dict[str, Any]:
        """The QR panel and buttons of the change page, as the user may use them."""
        can_change = self.has_change_permission(request, invitation)
        buttons = []
        if can_change and invitation.is_open:
            if invitation.person.email:
                buttons.append(("Resend email", invitation_admin_url(invitation, "resend")))
            buttons.append(("Cancel invitation", invitation_admin_url(invitation, "cancel")))
        if (
            self.has_reissue_permission(request, invitation)
            and invitation.status != VerificationStatus.VERIFIED
            and invitation.replaced_by_id is None
        ):
            buttons.append(
                ("Reissue (new link and code)", invitation_admin_url(invitation, "reissue"))
            )
        panel: dict[str, Any] = {"buttons": buttons, "show_secrets": can_change}
        if can_change and invitation.is_open:
            panel.update(admin_views.invitation_panel_context(invitation))
            panel.update(
                qr_url=invitation_admin_url(invitation, "qr"),
                desk_url=invitation_admin_url(invitation, "desk"),
            )
        return {"panel": panel}

    @admin.display(description="timeline")
    def timeline(self, invitation: VerificationSession) -> str:
        return render_to_string(
            "admin/consent/timeline.html",
            {"invitations": admin_views.timeline_context([invitation]), "show_headings": False},
        )


@admin.register(UpstreamVerification)
class UpstreamVerificationAdmin(UpstreamSessionDisplay, KeepRows, StatusColumn, admin.ModelAdmin):
    """Every upstream session (CreateVisualValidateSession) the portal made: read-only, a log.

    BytedTokens are shown by their last characters only; the API key never appears (its
    fingerprint names it).
    """

    list_display = (
        "__str__",
        "person",
        "purpose",
        "status_badge",
        "created_at",
        "callback",
        "group_id",
        "attempts",
    )
    list_select_related = ("invitation__person",)
    list_filter = ("status", "purpose", "created_at")
    search_fields = ("=byted_token", "=group_id", "=public_id", "invitation__person__legal_name")
    fields = (
        "invitation",
        "purpose",
        "status_badge",
        "language",
        "token",
        "link",
        "h5_link_expires_at",
        "token_expires_at",
        "api_key_fingerprint",
        "callback_received_at",
        "callback_parameters",
        "group_id",
        "confirmed_at",
        "attempts",
        "last_polled_at",
        "next_poll_at",
        "upstream_words",
        "public_id",
        "created_by",
        "created_at",
        "ended_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="person", ordering="invitation__person__legal_name")
    def person(self, row: UpstreamVerification) -> Person:
        return row.invitation.person

    @admin.display(description="H5 link")
    def link(self, row: UpstreamVerification) -> str:
        return masked(row.h5_link, row.byted_token) or "—"

    @admin.display(description="callback parameters")
    def callback_parameters(self, row: UpstreamVerification) -> str:
        if not row.callback_params:
            return "—"
        return masked(
            ", ".join(f"{key}={value}" for key, value in row.callback_params.items()),
            row.byted_token,
        )


@admin.register(OutboundEmail)
class OutboundEmailAdmin(KeepRows, StatusColumn, admin.ModelAdmin):
    """Every email the portal sent or tried to send: read-only, a log."""

    list_display = (
        "to",
        "template",
        "language",
        "status_badge",
        "created_at",
        "sent_at",
        "attempts",
    )
    list_filter = ("status", "template", "language", "created_at")
    search_fields = ("to", "invitation__person__legal_name", "consent__person__legal_name")
    fields = ("invitation", "consent", "to", "template", "language", "subject", "status_badge",
              "attempts", "last_error", "sent_at", "created_by", "created_at")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
