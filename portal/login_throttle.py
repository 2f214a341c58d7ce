"""Hooks of the login throttle (django-axes; configured in settings, "Login throttling")."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_client_username
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, Any]
) -> HttpResponse:
    """The admin-styled page (429) a locked-out login gets: why, how long, who can unlock."""
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in paused",
        "username": get_client_username(request, credentials) or "",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        # At the second sign-in step (portal.two_factor_views) wrong codes count as well.
        "failures": "wrong passwords or codes"
        if getattr(request, "two_factor_step", False)
        else "wrong passwords",
        "minutes": int(settings.AXES_COOLOFF_TIME.total_seconds() // 60),
    }
    return render(request, "registration/locked_out.html", context, status=429)
