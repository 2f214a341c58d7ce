"""The request id every audit event carries, for the current request or Celery task.

A web request takes the id from a trusted proxy's ``X-Request-ID`` header (or makes one) and
echoes it in the response, so an event can be matched with the proxy's and the server's logs.
A Celery task uses ``task:<task id>``. Anything else (a management command, a shell) has none.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

_request_id: ContextVar[str] = ContextVar("audit_request_id", default="")
# A proxy's id is kept only when it looks like an id: it ends up in evidence bundles.
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current_request_id() -> str:
    return _request_id.get()


class RequestIdMiddleware:
    """Gives each request an id (``X-Request-ID``) that its audit events record."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _ACCEPTED_ID.match(offered) else uuid.uuid4().hex
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = request_id
        return response


def _task_started(task_id: str | None = None, **_: Any) -> None:
    _request_id.set(f"task:{task_id}" if task_id else "")


def _task_finished(**_: Any) -> None:
    _request_id.set("")


def connect_celery_signals() -> None:
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_started, weak=False, dispatch_uid="audit-request-id-start")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="audit-request-id-end")
