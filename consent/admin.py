"""Admin for people, their consent records, their invitations to verification and the upstream
sessions made from those.

Onboarding staff create people and record consent here, and invite people to real-person
verification ("Invite to verify"), show the invitation's QR code or verify them at the desk
("Verify here now"). Those workflows are services (``consent.services``), reached through
``consent.admin_views``; their status fields are shown, never typed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import F, Func, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join

from assets.admin import asset_file, asset_reference, measured
from assets.models import Asset, AssetGroup
from consent import admin_views
from consent.admin_views import Outcome, VerificationState, invitation_admin_url
from consent.models import (
    ConsentRecord,
    ConsentStatus,
    OutboundEmail,
    Person,
    UpstreamVerification,
    VerificationSession,
    VerificationStatus,
)
from portal.admin_helpers import (
    KeepRows,
    PrivateFileAdmin,
    ReadOnlyInline,
    StatusColumn,
    badge,
    status_badge,
)

_SYSTEM_FIELDS = ("created_by", "created_at", "updated_at")


def _count(rows: QuerySet[Any]) -> Coalesce:
    """``COUNT(*)`` of ``rows`` (correlated to the outer row) as an annotation."""
    # COUNT as a plain function, not an aggregate: Django would otherwise add a GROUP BY.
    counted = rows.order_by().annotate(n=Func(F("pk"), function="COUNT")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


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
class PersonAdmin(CreatedByAdmin):
    list_display = (
        "legal_name",
        "display_name",
        "email",
        "preferred_language",
        "latest_consent",
        "verification",
        "consent_count",
        "active_asset_count",
        "created_at",
    )
    list_filter = (VerificationStateFilter, "preferred_language", "created_at")
    search_fields = ("legal_name", "display_name", "email", "phone")
    readonly_fields = ("verification_timeline", "asset_list", *_SYSTEM_FIELDS)
    fieldsets = (
        (None, {"fields": ("legal_name", "display_name", "preferred_language")}),
        ("Contact", {"fields": ("email", "phone", "notes")}),
        ("Verification", {"fields": ("verification_timeline",)}),
        ("Assets", {"fields": ("asset_list",)}),
        ("System", {"classes": ("collapse",), "fields": _SYSTEM_FIELDS}),
    )
    actions = ("invite_to_verify",)
    change_form_template = "admin/consent/person/change_form.html"

    class Media:
        css = {"all": ("consent/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Person]:
        latest = ConsentRecord.objects.filter(person=OuterRef("pk")).order_by("-created_at", "-pk")
        # Each count in its own subquery: joining consent records and assets in one query would
        # multiply them per person before counting.
        consents = ConsentRecord.objects.filter(person=OuterRef("pk"))
        active_assets = Asset.objects.active().filter(group__person=OuterRef("pk"))
        people = (
            super()
            .get_queryset(request)
            .annotate(
                latest_consent_status=Subquery(latest.values("status")[:1]),
                consent_count=_count(consents),
                active_asset_count=_count(active_assets),
            )
        )
        return admin_views.with_verification_state(people)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:  # a new person has no invitations nor assets yet
            return [f for f in self.fieldsets if f[0] not in ("Verification", "Assets")]
        return self.fieldsets

    def get_urls(self) -> list[URLPattern]:
        invite = self.admin_site.admin_view(self.invite_view)
        return [
            path("<path:object_id>/invite/", invite, name="consent_person_invite"),
            *super().get_urls(),
        ]

    def has_invite_permission(self, request: HttpRequest) -> bool:
        """Inviting makes an invitation: it takes the permission to add one."""
        return request.user.has_perm("consent.add_verificationsession")

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

    @admin.display(description="latest consent", ordering="latest_consent_status")
    def latest_consent(self, person: Person) -> str:
        status = person.latest_consent_status  # type: ignore[attr-defined]
        return badge(status, ConsentStatus(status).label) if status else "—"

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
            "<td>{}</td></tr>",
            (
                (
                    reverse("admin:assets_asset_change", args=[asset.pk]),
                    asset,
                    asset.group,
                    status_badge(asset),
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
            "<th>reference</th><th>measured</th><th>file</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            rows,
        )


@admin.register(ConsentRecord)
class ConsentRecordAdmin(KeepRows, PrivateFileAdmin, CreatedByAdmin):
    private_file_field = "signed_document"
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
        "starts_on",
        "expires_on",
    )
    search_fields = (
        "person__legal_name",
        "person__display_name",
        "person__email",
        "consent_text_version",
        "projects",
    )
    autocomplete_fields = ("person",)
    date_hierarchy = "created_at"
    _review_fields = (
        "status_badge",
        "reviewed_by",
        "reviewed_at",
        "review_note",
        "revoked_at",
        "revocation_reason",
    )
    readonly_fields = ("private_file_link", *_review_fields, *_SYSTEM_FIELDS)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        # A signed document, once attached, is evidence: it is shown, never replaced.
        document = "private_file_link" if obj and obj.signed_document else "signed_document"
        return (
            (None, {"fields": ("person", "consent_text_version", "capture_method")}),
            (
                "Scope",
                {
                    "fields": (
                        "intended_uses",
                        "projects",
                        ("covers_images", "covers_video", "covers_audio"),
                        "territory",
                        ("starts_on", "expires_on"),
                    )
                },
            ),
            ("Signed document", {"fields": (document,)}),
            ("Review", {"fields": self._review_fields}),
            ("System", {"classes": ("collapse",), "fields": _SYSTEM_FIELDS}),
        )

    @admin.display(description="covers")
    def covers(self, record: ConsentRecord) -> str:
        return ", ".join(record.media_types())


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
    list_select_related = ("invitation__person",)
    list_filter = ("status", "template", "language", "created_at")
    search_fields = ("to", "invitation__person__legal_name")
    fields = ("invitation", "to", "template", "language", "subject", "status_badge", "attempts",
              "last_error", "sent_at", "created_by", "created_at")  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
