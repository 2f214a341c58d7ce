"""Latency and fault injection, driven by the ``SANDBOX_*`` settings.

Every API call first waits ``SANDBOX_LATENCY_MS`` plus a random 0 to
``SANDBOX_LATENCY_JITTER_MS`` (the network's variable delay: the rate limit counts the call as
arriving when this wait is over), then draws one random number against the shares
``SANDBOX_FAULT_RATE_500``, ``_502``, ``_429``, ``_TIMEOUT`` and ``_DROP`` (in that order,
cumulatively, so their sum should stay at or below 1):

* 500: a JSON gateway error, as Anyfast relays an upstream ``InternalServiceError``;
* 502: the HTML page a reverse proxy answers when the gateway behind it is gone;
* 429: a rate-limit answer, although the key is within its budget;
* timeout: the call waits ``SANDBOX_TIMEOUT_SECONDS`` and is *then handled normally*, like a
  gateway that holds a create call open: a client that gave up may find the asset it created;
* drop: the connection is closed without any answer (``requests`` raises ``ConnectionError``);
* 500 after, drop after (``SANDBOX_FAULT_RATE_500_AFTER``, ``_DROP_AFTER``): the call is handled
  (a delete deletes) and *then* answered 500, or not at all: the ambiguous writes of a gateway
  that lost the upstream's answer.

``SANDBOX_FAULT_ACTIONS`` ("DeleteAsset,CreateAsset") limits the faults to those actions.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from sandbox.errors import error_response

logger = logging.getLogger(__name__)

FAULT_500 = "500"
FAULT_502 = "502"
FAULT_429 = "429"
FAULT_TIMEOUT = "timeout"
FAULT_DROP = "drop"
FAULT_500_AFTER = "500-after"
FAULT_DROP_AFTER = "drop-after"
# The faults whose call is handled first: the client loses the answer of work that was done.
AFTER_HANDLING = {FAULT_500_AFTER: FAULT_500, FAULT_DROP_AFTER: FAULT_DROP}

_GATEWAY_PAGE = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>nginx</center>
</body>
</html>
"""


def sleep(seconds: float) -> None:
    """Wait; a function of its own so that tests can replace it."""
    time.sleep(seconds)


def add_latency() -> float:
    """Wait the configured latency and jitter; the seconds that were meant to pass."""
    jitter = random.uniform(0, settings.SANDBOX_LATENCY_JITTER_MS)  # noqa: S311 - not cryptography
    seconds = (settings.SANDBOX_LATENCY_MS + jitter) / 1000
    if seconds > 0:
        sleep(seconds)
    return seconds


def draw_fault(action: str = "") -> str | None:
    """Which fault, if any, this call of ``action`` gets."""
    if settings.SANDBOX_FAULT_ACTIONS and action not in settings.SANDBOX_FAULT_ACTIONS:
        return None
    shares = (
        (FAULT_500, settings.SANDBOX_FAULT_RATE_500),
        (FAULT_502, settings.SANDBOX_FAULT_RATE_502),
        (FAULT_429, settings.SANDBOX_FAULT_RATE_429),
        (FAULT_TIMEOUT, settings.SANDBOX_FAULT_RATE_TIMEOUT),
        (FAULT_DROP, settings.SANDBOX_FAULT_RATE_DROP),
        (FAULT_500_AFTER, settings.SANDBOX_FAULT_RATE_500_AFTER),
        (FAULT_DROP_AFTER, settings.SANDBOX_FAULT_RATE_DROP_AFTER),
    )
    if not any(share > 0 for _, share in shares):
        return None
    draw = random.random()  # noqa: S311 - fault injection, not cryptography
    threshold = 0.0
    for fault, share in shares:
        threshold += share
        if draw < threshold:
            return fault
    return None


def fault_response(fault: str) -> HttpResponse:
    """The answer of a 500, 502 or 429 fault."""
    if fault == FAULT_500:
        return error_response(
            500,
            "upstream_error: [InternalServiceError] The service encountered an unexpected "
            "internal error. Please retry later.",
            type_="upstream_error",
            code="InternalServiceError",
        )
    if fault == FAULT_502:
        return HttpResponse(_GATEWAY_PAGE, status=502, content_type="text/html")
    if fault == FAULT_429:
        return rate_limited_response()
    raise ValueError(f"{fault} has no response")


def rate_limited_response() -> HttpResponse:
    response = error_response(
        429,
        "upstream_error: [RequestLimitExceeded] Request was denied due to request throttling. "
        "Please try again later.",
        type_="upstream_error",
        code="RequestLimitExceeded",
    )
    response["Retry-After"] = "1"
    return response


def drop_connection(request: HttpRequest) -> HttpResponse:
    """Close the client's connection so that it never gets an answer.

    WSGI has no way to say "no response", so this shuts the socket down under the server:
    gunicorn hands the socket over as ``environ["gunicorn.socket"]`` (Django's ``request.META`` is
    the WSGI environ); Django's runserver and
    the test live server only through the connection's buffered reader, which Django's
    ``LimitedStream`` (``wsgi.input``) keeps as its bound ``read``. The server's later write
    fails with a broken pipe, which both servers treat as a client that went away.

    Without a socket (Django's test client, an unknown server) this raises
    ``ConnectionAbortedError``, which the test client re-raises and a real server turns into a
    500.
    """
    request.body  # noqa: B018 - read the body so the server finds no leftover bytes to parse
    conn, duplicated = _connection_of(request.META)
    if conn is None:
        raise ConnectionAbortedError("sandbox: dropped connection (no socket to close)")
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        logger.debug("sandbox: the connection was already closed")
    finally:
        if duplicated:
            conn.close()
    # Never reaches the client; it only gives the server something to fail writing. A 2xx keeps
    # Django from logging the drop as a server error.
    return HttpResponse(b"", status=200)


def _connection_of(environ: dict[str, Any]) -> tuple[socket.socket | None, bool]:
    """The client connection's socket, and whether it is a duplicate to close after use."""
    conn = environ.get("gunicorn.socket")
    if isinstance(conn, socket.socket):
        return conn, False
    stream = environ.get("wsgi.input")
    reader = getattr(getattr(stream, "_read", None), "__self__", None)
    fileno = getattr(reader, "fileno", None)
    if fileno is None:
        return None, False
    try:
        # socket(fileno=...) would take the fd over; a duplicate leaves the server's own intact,
        # and shutdown() acts on the connection behind both.
        return socket.socket(fileno=os.dup(fileno())), True
    except (OSError, ValueError):
        return None, False
