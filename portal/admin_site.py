"""The portal's admin site: Django's, with each role's work first on the admin home, and a second
sign-in factor for superusers and Legal (``portal.two_factor_views``).

Installed through ``portal.apps.PortalAdminConfig`` in place of ``django.contrib.admin``, so
``admin.site`` and ``@admin.register`` are this site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from django.apps import apps
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import NoReverseMatch, URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from portal import two_factor_views
from portal.roles import ROLES, WorkLink, WorkQueue


@dataclass(frozen=True)
class WorkItem:
    """One line of a role's work on the admin home: a page, or a queue with its count."""

    title: str
    url: str
    count: int | None = None


@dataclass(frozen=True)
class RoleWork:
    role: str
    items: list[WorkItem]


class PortalAdminSite(admin.AdminSite):
    site_header = "Talent Consent Portal"
    site_title = "Talent Consent Portal"
    index_title = "People, consent, verification and likeness assets"
    # No public site to view: the header's "View site" link is not shown.
    site_url = None

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        """Django's admin login (same page, form and context), whose view hands users who need a
        second factor on to it: ``AdminSite.login`` with ``TwoFactorLoginView``."""
        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request),
            "title": _("Log in"),
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        view = two_factor_views.TwoFactorLoginView.as_view(
            extra_context=context,
            authentication_form=self.login_form or AdminAuthenticationForm,
            template_name=self.login_template or "admin/login.html",
        )
        return cast(HttpResponse, view(request))

    def get_urls(self) -> list[URLResolver | URLPattern]:
        steps: list[URLResolver | URLPattern] = [
            path("login/code/", two_factor_views.code_view, name="two_factor"),
            path("login/enrol/", two_factor_views.enrol_view, name="two_factor_enrol"),
        ]
        return steps + super().get_urls()

    def index(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:  # type: ignore[override]
        """The admin home, the user's work queues first (``work_for``); producers, who have
        nothing in the admin, go on to their references page (after login too, which lands
        here)."""
        if request.user.has_perm("assets.view_references") and not self.get_app_list(request):
            return HttpResponseRedirect(reverse("references:list"))
        return super().index(request, {"work": self.work_for(request), **(extra_context or {})})

    def work_for(self, request: HttpRequest) -> list[RoleWork]:
        """The work items of every role that the user holds the permission of, by role.

        One COUNT query per queue shown, whatever the number of rows.
        """
        shown = []
        for role in ROLES:
            items = [item for entry in role.work if (item := self._item(request, entry))]
            if items:
                shown.append(RoleWork(role=role.name, items=items))
        return shown

    def _item(self, request: HttpRequest, entry: WorkQueue | WorkLink) -> WorkItem | None:
        if not request.user.has_perm(entry.permission):
            return None
        if isinstance(entry, WorkLink):
            try:
                return WorkItem(entry.title, reverse(entry.url_name))
            except NoReverseMatch:  # the page is not part of this deployment (yet)
                return None
        try:
            model = apps.get_model(entry.model)
        except LookupError:  # its app is not installed (yet)
            return None
        if not self.is_registered(model):
            return None
        model_admin = self.get_model_admin(model)
        if not model_admin.has_view_permission(request):
            return None
        today = timezone.localdate()
        params = entry.params(today)
        lookups = (entry.lookups or entry.params)(today)
        count = model_admin.get_queryset(request).filter(**lookups).count()
        opts = model._meta
        url = reverse(f"{self.name}:{opts.app_label}_{opts.model_name}_changelist")
        return WorkItem(entry.title, f"{url}?{urlencode(params)}", count)
