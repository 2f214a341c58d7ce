"""The request id every audit event carries, for the current request or Celery task.

A web request gets an id the portal makes (32 hex digits), echoed in the response's
``X-Request-ID``. An ``X-Request-ID`` the request came with (a proxy's, or anybody's: the
portal cannot tell) is kept apart, after the portal's, as `` (client <id>)``: only when it looks
like an id, cut to ``CLIENT_ID_LENGTH`` characters, so that it still matches the proxy's logs but
never passes for the portal's id or a task's (``task:<task id>``: a Celery task's). Anything
else (a management command, a shell) has none.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.http import HttpRequest, HttpResponse

_request_id: ContextVar[str] = ContextVar("audit_request_id", default="")
# A client's id is kept only when it looks like an id (it ends up in evidence bundles), and cut
# so that the whole stays within the 80 characters of an event's request_id.
CLIENT_ID_LENGTH = 38
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


def current_request_id() -> str:
    return _request_id.get()


class RequestIdMiddleware:
    """Gives each request an id (``X-Request-ID``) that its audit events record."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        own = uuid.uuid4().hex
        offered = request.headers.get("X-Request-ID", "")
        client = f" (client {offered[:CLIENT_ID_LENGTH]})" if _ACCEPTED_ID.match(offered) else ""
        token = _request_id.set(own + client)
        try:
            response = self.get_response(request)
        finally:
            _request_id.reset(token)
        response["X-Request-ID"] = own
        return response


def _task_started(task_id: str | None = None, **_: Any) -> None:
    _request_id.set(f"task:{task_id}" if task_id else "")


def _task_finished(**_: Any) -> None:
    _request_id.set("")


def connect_celery_signals() -> None:
    from celery.signals import task_postrun, task_prerun

    task_prerun.connect(_task_started, weak=False, dispatch_uid="audit-request-id-start")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="audit-request-id-end")
