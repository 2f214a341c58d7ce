"""Operational endpoints that belong to no app."""

from __future__ import annotations

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal.tasks import last_heartbeat


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness of the web process and what it sees of the database and the Celery worker.

    503 when the database does not answer. A silent worker does not fail the check (the web
    process is still healthy) but is reported: ``worker.ok`` is false when no heartbeat arrived
    within three intervals, so monitoring can alert on it.
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        seen = last_heartbeat()
    except DatabaseError:
        return JsonResponse({"database": "unavailable"}, status=503)
    age = (timezone.now() - seen).total_seconds() if seen else None
    worker = {
        "last_heartbeat": seen.isoformat() if seen else None,
        "ok": age is not None and age <= 3 * settings.HEARTBEAT_INTERVAL_SECONDS,
    }
    return JsonResponse({"database": "ok", "worker": worker})


_FAVICON = (settings.BASE_DIR / "static" / "portal" / "favicon.ico").read_bytes()


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """``/favicon.ico``, which browsers ask for whatever the pages link (the pages link the
    SVG under /static/)."""
    response = HttpResponse(_FAVICON, content_type="image/x-icon")
    response["Cache-Control"] = "public, max-age=86400"
    return response
