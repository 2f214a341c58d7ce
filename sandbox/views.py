"""The wire protocol: ``POST /sandbox/volc/asset/<Action>``, one dispatch view for every action.

Each call goes through the same steps, in the order a gateway in front of an upstream would:
count the call → added latency and injected faults (those "after" handling answer once the
action is done) → Bearer key (401) → rate limit (429) → JSON
body (400) → the action's handler (``sandbox.actions.ACTIONS``).
"""

from __future__ import annotations

import json
import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from sandbox import counters, faults, ratelimit
from sandbox.actions import ACTIONS, Caller
from sandbox.errors import ApiError, gateway_error
from upstream.keys import key_fingerprint

# A key with this prefix plays an ordinary Anyfast key, routed to AIGC assets only: the guide's
# one documented refusal is that it cannot create verification sessions.
AIGC_KEY_PREFIX = "sk-aigc-"


@csrf_exempt
def api(request: HttpRequest, action: str) -> HttpResponse:
    """Answer one API call: the bare result object on 200, ``{"error": {...}}`` otherwise."""
    handler = ACTIONS.get(action)
    if handler is None:
        return gateway_error(
            404, f"Invalid URL ({request.method} {request.path})", code="invalid_url"
        ).response()
    if request.method != "POST":
        return gateway_error(
            405, f"Method {request.method} is not allowed", code="method_not_allowed"
        ).response()
    # The rate limit counts the call when it arrives: now, plus the simulated network delay.
    arrived = time.time()
    counters.record_call(action)

    delay = faults.add_latency()
    fault = faults.draw_fault(action)
    if fault is not None:
        counters.record_fault(action)
        if fault == faults.FAULT_DROP:
            return faults.drop_connection(request)
        if fault == faults.FAULT_TIMEOUT:
            # Held open, then handled: the client has given up, the work still happens.
            faults.sleep(settings.SANDBOX_TIMEOUT_SECONDS)
        elif fault not in faults.AFTER_HANDLING:  # those are handled, then their answer is lost
            return faults.fault_response(fault)

    try:
        caller = _caller(request)
        if not ratelimit.try_acquire(
            owner_fingerprint=caller.fingerprint, action=action, now=arrived + delay
        ):
            counters.record_rate_limited(action)
            return faults.rate_limited_response()
        result = handler(caller, _json_body(request))
    except ApiError as error:
        return error.response()
    lost = faults.AFTER_HANDLING.get(fault or "")
    if lost == faults.FAULT_DROP:
        return faults.drop_connection(request)
    if lost is not None:
        return faults.fault_response(lost)
    return JsonResponse(result)


def _caller(request: HttpRequest) -> Caller:
    """The caller behind the ``Authorization: Bearer <key>`` header; any non-empty key works."""
    header = request.headers.get("Authorization", "").strip()
    if not header:
        raise gateway_error(401, "No token provided", code="missing_api_key")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer":
        raise gateway_error(401, "Invalid token", code="invalid_api_key")
    if not key:
        raise gateway_error(401, "No token provided", code="missing_api_key")
    return Caller(fingerprint=key_fingerprint(key), aigc_only=key.startswith(AIGC_KEY_PREFIX))


def _json_body(request: HttpRequest) -> dict:
    """The JSON object of the body; an empty body is ``{}``."""
    if not request.body.strip():
        return {}
    try:
        body = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise gateway_error(400, f"Invalid JSON body: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise gateway_error(400, "The JSON body must be an object", code="invalid_json")
    return body
