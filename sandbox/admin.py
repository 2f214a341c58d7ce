"""The sandbox's state in the admin, under "Sandbox": read-only changelists for inspection."""

from __future__ import annotations

import datetime

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from sandbox import counters
from sandbox.models import (
    ActionCounter,
    RateLimitWindow,
    SandboxAsset,
    SandboxGroup,
    SandboxSession,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """The sandbox plays a remote service: its rows change only through its API and phone page.

    Deleting stays allowed, to clear out test data.
    """

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.display(description="key")
def owner_key(obj) -> str:
    return obj.owner_fingerprint


@admin.register(SandboxSession)
class SandboxSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "byted_token",
        owner_key,
        "created_at",
        "link_used_at",
        "result_code",
        "identity",
        "group",
        "token_state",
    ]
    list_filter = ["result_code", "created_at"]
    search_fields = ["byted_token", "callback_url", "owner_fingerprint", "group__group_id"]
    list_select_related = ["group"]
    date_hierarchy = "created_at"

    @admin.display(description="token")
    def token_state(self, obj: SandboxSession) -> str:
        return "expired" if obj.token_is_expired(timezone.now()) else "valid"


class SandboxAssetInline(admin.TabularInline):
    model = SandboxAsset
    fields = ["asset_id", "name", "asset_type", "face_identity", "outcome", "error_code"]
    readonly_fields = ["asset_id", "name", "asset_type", "face_identity", "outcome", "error_code"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(SandboxGroup)
class SandboxGroupAdmin(ReadOnlyAdmin):
    list_display = [
        "group_id",
        "group_type",
        "name",
        "verified_identity",
        owner_key,
        "created_at",
    ]
    list_filter = ["group_type", "created_at"]
    search_fields = ["group_id", "name", "verified_identity", "owner_fingerprint"]
    inlines = [SandboxAssetInline]


@admin.register(SandboxAsset)
class SandboxAssetAdmin(ReadOnlyAdmin):
    list_display = [
        "asset_id",
        "name",
        "asset_type",
        "group",
        "face_identity",
        "status",
        "error_code",
        "created_at",
    ]
    list_filter = ["asset_type", "outcome", "group__group_type"]
    search_fields = ["asset_id", "name", "group__group_id", "sha256"]
    list_select_related = ["group"]

    @admin.display(description="status now")
    def status(self, obj: SandboxAsset) -> str:
        return obj.status_at(timezone.now())


@admin.action(description="Reset all counters")
def reset_counters(modeladmin, request: HttpRequest, queryset) -> None:
    counters.reset()
    modeladmin.message_user(request, "Every sandbox counter was reset.")


@admin.register(ActionCounter)
class ActionCounterAdmin(ReadOnlyAdmin):
    list_display = ["action", "calls", "rate_limited", "faults"]
    actions = [reset_counters]


@admin.register(RateLimitWindow)
class RateLimitWindowAdmin(ReadOnlyAdmin):
    list_display = ["action", owner_key, "calls_kept", "last_call"]
    list_filter = ["action"]

    @admin.display(description="calls kept")
    def calls_kept(self, obj: RateLimitWindow) -> int:
        return len(obj.arrivals)

    @admin.display(description="last call")
    def last_call(self, obj: RateLimitWindow) -> datetime.datetime | None:
        if not obj.arrivals:
            return None
        return datetime.datetime.fromtimestamp(obj.arrivals[-1], tz=datetime.UTC)
