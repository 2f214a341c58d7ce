"""The portal's admin site: Django's, with each role's work first on the admin home.

Installed through ``portal.apps.PortalAdminConfig`` in place of ``django.contrib.admin``, so
``admin.site`` and ``@admin.register`` are this site.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.http import urlencode

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

    def index(self, request: HttpRequest, extra_context: Any = None) -> TemplateResponse:
        """The admin home, the user's work queues first (``work_for``)."""
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
