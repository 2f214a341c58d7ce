"""Admin of invitations and their upstream sessions.

Invitations are made by "Invite to verify" on a person (never typed in here), and resent,
cancelled, reissued and shown at the desk through ``verification.admin_views``. Upstream
sessions are a read-only record of every attempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import (
    QuerySet,
)
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.template.loader import render_to_string
from django.urls import URLPattern, path
from django.utils.html import format_html

from consent.models import Person
from mail.admin import OutboundEmailInline
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import (
    SYSTEM_FIELDS,
    CreatedByAdmin,
    KeepRows,
    ReadOnlyInline,
    StatusColumn,
    post_only,
)
from upstream.errors import mask_byted_token
from verification import admin_views
from verification.admin_views import Outcome, invitation_admin_url
from verification.models import UpstreamSession, VerificationSession, VerificationStatus


def short_token(token: str | None) -> str:
    """A BytedToken as staff see it: its last six characters (the whole one is a credential)."""
    return f"…{token[-6:]}" if token else "—"


masked = mask_byted_token  # an H5 link, callback parameters, the upstream's words


class UpstreamSessionDisplay:
    """Columns of an upstream session shared by its inline and its own admin."""

    @admin.display(description="BytedToken")
    def token(self, row: UpstreamSession) -> str:
        return short_token(row.byted_token)

    @admin.display(description="callback")
    def callback(self, row: UpstreamSession) -> str:
        if row.callback_received_at is None:
            return "—"
        return f"resultCode={row.callback_result_code or '(none)'}"

    @admin.display(description="upstream's words")
    def upstream_words(self, row: UpstreamSession) -> str:
        words = masked(f"{row.last_error_code} {row.last_error}".strip(), row.byted_token)
        if not words:
            return "—"
        if not row.last_error_explanation:
            return words
        return format_html("{}<br><span class='help'>{}</span>", words, row.last_error_explanation)


class UpstreamSessionInline(UpstreamSessionDisplay, ReadOnlyInline):
    model = UpstreamSession
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


@admin.register(VerificationSession)
class VerificationSessionAdmin(ScalableChangelist, KeepRows, CreatedByAdmin):
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
    inlines = (UpstreamSessionInline, OutboundEmailInline)
    change_form_template = "admin/verification/verificationsession/change_form.html"
    _status_fields = ("status_badge", "expires_at", "opened_at", "verified_at", "ended_at")
    _system_fields = ("ended_by", "replaced_by", *SYSTEM_FIELDS)
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
            "verification.add_verificationsession"
        )

    # --- Actions (the changelist) and buttons (the change page) ---

    def _run(
        self,
        request: HttpRequest,
        queryset: QuerySet[VerificationSession],
        operation: Callable[[HttpRequest, VerificationSession], Outcome],
    ) -> None:
        for invitation in queryset:
            operation(request, invitation).report(self, request)

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
                f"<path:object_id>/{suffix}/",
                wrapped,
                name=f"verification_verificationsession_{name}",
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
            if refused := post_only(request):
                return refused
            invitation = self._invitation(request, object_id, permission)
            outcome = operation(request, invitation)
            outcome.report(self, request)
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
        if refused := post_only(request):
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
            "admin/verification/timeline.html",
            {"invitations": admin_views.timeline_context([invitation]), "show_headings": False},
        )


@admin.register(UpstreamSession)
class UpstreamSessionAdmin(
    ScalableChangelist, UpstreamSessionDisplay, KeepRows, StatusColumn, admin.ModelAdmin
):
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
    def person(self, row: UpstreamSession) -> Person:
        return row.invitation.person

    @admin.display(description="H5 link")
    def link(self, row: UpstreamSession) -> str:
        return masked(row.h5_link, row.byted_token) or "—"

    @admin.display(description="callback parameters")
    def callback_parameters(self, row: UpstreamSession) -> str:
        if not row.callback_params:
            return "—"
        return masked(
            ", ".join(f"{key}={value}" for key, value in row.callback_params.items()),
            row.byted_token,
        )
