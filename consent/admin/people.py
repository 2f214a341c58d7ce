"""Admin of people: the People list, the person page and what staff start from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Model, OuterRef, QuerySet, Subquery
from django.db.models.lookups import IsNull
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assets.admin.files import (
    asset_file,
    asset_reference,
    asset_state,
    may_open_asset_files,
    measured,
    upload_view,
)
from assets.admin.withdrawals import withdrawals_table
from assets.models import Asset, AssetGroup, Withdrawal
from audit.admin import AuditedSavesAdmin, events_timeline
from audit.models import AuditEvent
from consent import evidence, services
from consent.forms import LegalHoldForm
from consent.models import ConsentRecord, Person
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import (
    SYSTEM_FIELDS,
    CreatedByAdmin,
    ReadOnlyInline,
    count_of,
    may_view,
    post_only,
    status_badge,
)
from verification import admin_views
from verification.admin_views import VerificationState, invitation_admin_url
from verification.models import VerificationSession


@dataclass(frozen=True)
class NextStep:
    """The one thing to do next for a person, shown as the person page's styled button: a link,
    a POST (``action`` with hidden ``fields``), or only a sentence when nobody here can act."""

    label: str
    url: str = ""
    post: bool = False
    fields: tuple[tuple[str, str], ...] = ()
    note: str = ""


def next_step(request: HttpRequest, person: Person) -> NextStep | None:
    """Record consent → submit it → (Legal approves) → Invite to verify → Upload assets; steps
    that cannot work yet are not offered (no invitation without consent in force, no upload
    before verification)."""
    user = request.user
    records = person.consent_records.all()
    if records.in_force().exists():
        if person.asset_groups.filter(status=AssetGroup.Status.ACTIVE).exists():
            if user.has_perm("assets.add_asset"):
                return NextStep(
                    "Upload assets", reverse("admin:consent_person_upload_assets", args=[person.pk])
                )
            return None
        invitation = person.verification_sessions.open().first()
        if invitation is not None:
            return NextStep(
                "Invitation QR code",
                invitation_admin_url(invitation, "qr"),
                note="Invited: waiting for the person to verify.",
            )
        if user.has_perm("verification.add_verificationsession"):
            return NextStep(
                "Invite to verify", reverse("admin:consent_person_invite", args=[person.pk]), True
            )
        return None
    record_url = "admin:consent_consentrecord_change"
    pending = records.filter(status=ConsentRecord.Status.PENDING_REVIEW).order_by("-pk").first()
    if pending is not None:
        if user.has_perm("consent.review_consentrecord"):
            return NextStep("Review consent", reverse(record_url, args=[pending.pk]))
        return NextStep("", note="Consent submitted: waiting for Legal's review.")
    draft = records.filter(status=ConsentRecord.Status.DRAFT).order_by("-pk").first()
    if draft is not None:
        if not user.has_perm("consent.change_consentrecord"):
            return None
        return NextStep(
            "Submit consent for review",
            reverse("admin:consent_consentrecord_changelist"),
            post=True,
            fields=(("action", "submit_for_review"), (helpers.ACTION_CHECKBOX_NAME, str(draft.pk))),
        )
    if user.has_perm("consent.add_consentrecord"):
        add = reverse("admin:consent_consentrecord_add")
        return NextStep("Record consent", f"{add}?person={person.pk}")
    return None


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
    own query (``people_in_verification_state``: from the invitations' side, not a subquery per
    person on the ``verification_state`` column that ``PersonAdmin.get_queryset`` annotates)."""

    title = "verification"
    parameter_name = "verification"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(VerificationState.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value not in VerificationState.values:
            return queryset
        return queryset.filter(pk__in=admin_views.people_in_verification_state(value))


@admin.register(Person)
class PersonAdmin(ScalableChangelist, AuditedSavesAdmin, CreatedByAdmin):
    list_display = (
        "legal_name",
        "display_name",
        "email",
        "language",
        "consent_in_force",
        "verification",
        "consent_count",
        "active_asset_count",
        "added",
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
        *SYSTEM_FIELDS,
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
        ("System", {"classes": ("collapse",), "fields": SYSTEM_FIELDS}),
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
        in_force = ConsentRecord.objects.in_force().filter(person=OuterRef("pk"))
        active_assets = Asset.objects.active().filter(group__person=OuterRef("pk"))
        people = (
            super()
            .get_queryset(request)
            .annotate(
                # Not EXISTS: PostgreSQL may answer an EXISTS for all 50,000 people at once
                # (a hashed subplan reading every consent) to show 100 of them; a scalar
                # subquery is looked up per row shown, on the person's index.
                in_force=IsNull(Subquery(in_force.order_by().values("pk")[:1]), False),
                consent_count=count_of(consents),
                active_asset_count=count_of(active_assets),
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
        return request.user.has_perm("verification.add_verificationsession")

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
            outcome.report(self, request)
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
        if refused := post_only(request):
            return refused
        person = self.get_object(request, unquote(object_id))
        if person is None:
            raise Http404("No such person.")
        if not (self.has_view_permission(request, person) and self.has_invite_permission(request)):
            raise PermissionDenied
        outcome = admin_views.invite(request, person)
        outcome.report(self, request)
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
                next_step=next_step(request, obj),
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
            "admin/verification/timeline.html",
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

    # Short columns, so that the list fits a 1366 px screen beside its filters.
    @admin.display(description="language", ordering="preferred_language")
    def language(self, person: Person) -> str:
        return person.get_preferred_language_display()

    @admin.display(description="added", ordering="created_at")
    def added(self, person: Person) -> str:
        return f"{timezone.localdate(person.created_at):%Y-%m-%d}"

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        # The list needs the width: the admin's navigation sidebar is one click away (Home).
        context = {"is_nav_sidebar_enabled": False, **(extra_context or {})}
        return super().changelist_view(request, context)

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
