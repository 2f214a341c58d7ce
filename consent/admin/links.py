"""Admin of people's own links (``/me/<token>/``): who got one, for which email, until when.

Read-only (a link is made only by an email that carries it); legal, who record revocations, may
switch links off at once ("Switch off these links"). The token itself is never stored or shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from consent.models import PersonalLink
from consent.person_links import personal_links_revoke
from portal.admin_filters import ScalableChangelist
from portal.admin_helpers import ReadOnlyAdmin


@admin.register(PersonalLink)
class PersonalLinkAdmin(ScalableChangelist, ReadOnlyAdmin):
    list_display = ("person", "sent_for", "created_at", "expires_at", "state", "last_used_at")
    list_filter = ("sent_for",)
    list_select_related = ("person",)
    search_fields = ("person__legal_name", "person__display_name", "person__email")
    date_hierarchy = "created_at"
    fields = ("person", "sent_for", "created_at", "expires_at", "revoked_at", "last_used_at")
    actions = ("switch_off",)

    @admin.display(description="state")
    def state(self, link: PersonalLink) -> str:
        if link.revoked_at is not None:
            return "switched off"
        return "expired" if link.expires_at <= timezone.now() else "usable"

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("consent.revoke_consentrecord")

    @admin.action(description="Switch off these links", permissions=["revoke"])
    def switch_off(self, request: HttpRequest, queryset: QuerySet[PersonalLink]) -> Any:
        links = PersonalLink.objects.filter(pk__in=queryset.values("pk"))
        done = personal_links_revoke(links=links, actor=request.user)
        self.message_user(request, f"{done} link(s) switched off.", messages.SUCCESS)
