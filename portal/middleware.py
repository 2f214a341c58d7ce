"""Middleware of the portal itself."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.http import HttpRequest, HttpResponse


class RequestBodyLimitMiddleware:
    """Refuses a request body larger than its sender may send, before anything reads it.

    First in ``MIDDLEWARE``: it looks only at the headers. Django (under WSGI) reads a body
    lazily and never more than its ``Content-Length``, so a refused body is neither read nor
    spooled to disk. A signed-in session may send ``MAX_REQUEST_BODY_BYTES``; anyone else
    (the login form, people's phones) ``MAX_ANONYMOUS_REQUEST_BODY_BYTES``. Answers 413 above
    the limit, and 411 to a body without a ``Content-Length`` (``Transfer-Encoding: chunked``),
    which Django would otherwise read as empty.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        length = _content_length(request)
        if length is None:
            if "HTTP_TRANSFER_ENCODING" in request.META:
                return _refusal(411, "Send the request body with a Content-Length header.")
        elif length > settings.MAX_ANONYMOUS_REQUEST_BODY_BYTES:
            limit = (
                settings.MAX_REQUEST_BODY_BYTES
                if _signed_in(request)
                else settings.MAX_ANONYMOUS_REQUEST_BODY_BYTES
            )
            if length > limit:
                return _refusal(
                    413, f"The request body is {length} bytes; at most {limit} are accepted here."
                )
        return self.get_response(request)


def _content_length(request: HttpRequest) -> int | None:
    """The declared body length; None when absent or unreadable (Django then reads nothing)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _signed_in(request: HttpRequest) -> bool:
    """Whether the request's session cookie names a session someone signed in to.

    Runs before the session and authentication middleware; the view still checks the user.
    """
    session_key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return False
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return session.get(SESSION_KEY) is not None


def _refusal(status: int, message: str) -> HttpResponse:
    # No "Connection: close" (WSGI forbids hop-by-hop headers from applications): gunicorn
    # closes a connection whose unread body is too large to drain.
    return HttpResponse(message + "\n", status=status, content_type="text/plain")
