"""Admin of consent records: drafts, review (submit, approve, reject), revocation, versions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import (
    Field,
    Q,
    QuerySet,
)
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from assets.admin.withdrawals import withdrawals_table
from assets.models import Withdrawal
from assets.services.withdrawal_preview import withdrawal_preview
from audit.admin import AuditedSavesAdmin, events_timeline
from audit.models import AuditEvent
from audit.services import audit_record
from consent import services
from consent.documents import ACCEPT_ATTRIBUTE, document_rules
from consent.exports import consent_records_csv
from consent.forms import ApproveForm, RejectForm, RevokeForm
from consent.models import ConsentRecord, ConsentSignature, ConsentUse
from consent.services import (
    CONSENT_TRANSITIONS,
    consent_problems,
    consent_red_flags,
    consent_version_differences,
)
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import (
    SYSTEM_FIELDS,
    CreatedByAdmin,
    KeepRows,
    PrivateFileAdmin,
    may_view,
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


class ConsentRecordForm(forms.ModelForm):
    """A draft's form: a picked template version gives the text's version, language and hash;
    without one (older paper texts) the version and hash are typed."""

    class Meta:
        model = ConsentRecord
        # The admin's fieldsets give the rest.
        fields = ("template_version", "consent_text_version", "consent_text_language",
                  "consent_text_sha256")  # fmt: skip

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "consent_text_version" in self.fields:
            self.fields["consent_text_version"].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        version = data.get("template_version")
        if version is not None:
            data["consent_text_version"] = version.version
            data["consent_text_language"] = version.language
            data["consent_text_sha256"] = version.sha256
        elif not data.get("consent_text_version"):
            self.add_error("template_version", "Pick the consent text the person agrees to.")
        return data


@admin.register(ConsentRecord)
class ConsentRecordAdmin(
    ScalableChangelist, KeepRows, AuditedSavesAdmin, PrivateFileAdmin, CreatedByAdmin
):
    """Consent records and their lifecycle (``consent.services``): drafts are edited here,
    everything after goes through the actions, and an approved record never changes."""

    form = ConsentRecordForm
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
        # Fixed periods, on an index: a date hierarchy scanned every record for its days.
        "created_at",
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
    _review_fields = ("status_badge", "red_flags", *ConsentRecord.LIFECYCLE_FIELDS)
    _readonly_always = (
        "private_file_link",
        "signature_evidence",
        "version_history",
        "withdrawal_record",
        "audit_timeline",
        *_review_fields,
        *SYSTEM_FIELDS,
    )
    _terms_fieldsets = (
        (None, {"fields": ("person", "capture_method")}),
        (
            "Consent text",
            {
                "description": "Pick the published consent text the person agrees to: its "
                "version, language and SHA-256 are taken from it. Captured by electronic "
                "signature, the person signs it on their invitation page.",
                "fields": (
                    "template_version",
                    "consent_text_version",
                    ("consent_text_sha256", "consent_text_language"),
                ),
            },
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

    # Shown after the uses (templates/admin/consent/consentrecord/change_form.html): the terms
    # and uses come first, what happened to them after.
    AFTER_USES = ("Review", "Withdrawal upstream", "Versions", "Audit trail", "System")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # A signed document, once attached, is evidence: it is shown, never replaced.
        document = "private_file_link" if obj and obj.signed_document else "signed_document"
        audit = (
            [("Audit trail", {"classes": ("collapse",), "fields": ("audit_timeline",)})]
            if obj is not None and may_view(self.admin_site, request, AuditEvent)
            else []
        )
        has_versions = obj is not None and (obj.supersedes_id or obj.superseded_by.exists())
        return (
            *self._terms_fieldsets,
            ("Signed document", {"fields": (document, "signature_evidence")}),
            # A draft has not been reviewed: no empty review or revocation fields to scroll past.
            *([("Review", {"fields": self._review_fields_of(obj)})] if self._reviewed(obj) else []),
            *(
                [("Withdrawal upstream", {"fields": ("withdrawal_record",)})]
                if obj is not None
                and may_view(self.admin_site, request, Withdrawal)
                and obj.ended_at is not None
                else []
            ),
            *([("Versions", {"fields": ("version_history",)})] if has_versions else []),
            *audit,
            ("System", {"classes": ("collapse",), "fields": SYSTEM_FIELDS}),
        )

    @staticmethod
    def _reviewed(obj: ConsentRecord | None) -> bool:
        return obj is not None and obj.status != ConsentRecord.Status.DRAFT

    def _review_fields_of(self, obj: ConsentRecord) -> tuple[str, ...]:
        """The status, red flags and the lifecycle fields that hold something."""
        written = [f for f in ConsentRecord.LIFECYCLE_FIELDS if getattr(obj, f) not in (None, "")]
        return ("status_badge", "red_flags", *written)

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
        four_eyes = ""
        if record is not None:
            buttons = [
                (action.name, action.title)
                for transition, action in _LIFECYCLE_ACTIONS.items()
                if record.status in CONSENT_TRANSITIONS[transition][0]
                and self._may(request, action)
            ]
            # The submitter gets no approve or reject button, but the reason instead.
            decide = {_LIFECYCLE_ACTIONS["approve"].name, _LIFECYCLE_ACTIONS["reject"].name}
            if decide & {name for name, _ in buttons}:
                four_eyes = services.consent_four_eyes_problem(record=record, actor=request.user)
            if four_eyes:
                buttons = [button for button in buttons if button[0] not in decide]
        context = {
            **(extra_context or {}),
            "lifecycle_buttons": buttons,
            "four_eyes": four_eyes,
            "after_uses": self.AFTER_USES,
        }
        return super().change_view(request, object_id, form_url, context)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {**(extra_context or {}), "after_uses": self.AFTER_USES}
        return super().add_view(request, form_url, context)

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
        if transition in ("approve", "reject"):  # never by whoever submitted it
            for entry in entries:
                if entry["record"].status in allowed_from and (
                    problem := services.consent_four_eyes_problem(
                        record=entry["record"], actor=request.user
                    )
                ):
                    entry["problems"].insert(0, problem)
        ready = [entry["record"] for entry in entries if not entry["problems"]]
        # Always confirmed on this page, wherever the action was pressed: the problems, red
        # flags and (for a revocation) what will be withdrawn are read before anything changes.
        posted = "confirm" in request.POST
        form = action.form(request.POST if posted else None) if action.form else None
        if posted and ready and (form is None or form.is_valid()):
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
        revoking = transition == "revoke" and record.status in allowed_from
        return {
            "record": record,
            "problems": problems,
            "flags": flags,
            "reviewing": reviewing,
            "summary": summary,
            "withdrawal": withdrawal_preview(consent=record) if revoking else None,
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

    @admin.display(description="electronic signature")
    def signature_evidence(self, record: ConsentRecord) -> str:
        """Who signed on the phone, when, from where, and the hashes (``ConsentSignature``)."""
        signature = ConsentSignature.objects.filter(consent_id=record.pk).first()
        if signature is None:
            return "— (not signed electronically)"
        rows = [
            ("signed by", signature.typed_name),
            ("at", timezone.localtime(signature.signed_at).strftime("%Y-%m-%d %H:%M:%S %Z")),
            ("address", signature.ip_address or "unknown"),
            ("browser", signature.user_agent),
            ("notices confirmed", ", ".join(signature.notices_confirmed)),
            ("text SHA-256", signature.text_sha256),
            ("PDF SHA-256", signature.document_sha256),
            ("receipt", signature.receipt.get("consentReceiptID", "")),
        ]
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows))

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
