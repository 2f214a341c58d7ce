"""What can go wrong talking to the upstream, classified for the code that has to react.

Three families, because callers do three different things with them:

* ``TransientUpstreamError`` — try again later (timeouts before anything was sent, connection
  failures, 429, 5xx). The client already retried reads; tasks retry with backoff.
* ``PermanentUpstreamError`` — trying again cannot help (bad key, wrong token group, unknown
  group or asset, invalid request). Record it and tell a person what to fix.
* ``AmbiguousWrite`` (``AmbiguousCreate`` for CreateAsset) — a write was sent and no answer came
  back, so it may or may not have happened, and may still be happening. Never repeat it
  blindly: for an asset, ``AnyfastClient.create_asset_reconciled`` settles it.

Every error carries ``explanation``: one sentence for a person (staff in the admin, or the command
line), in the words of the provider's troubleshooting table where it has a row
(docs/upstream.md §5.4).

The error body shapes parsed here are those of docs/upstream.md §5.1 (gateway ``{"error": {...}}``,
relayed ``upstream_error: [<Code>] <Message>`` including masked ``[***.X]`` codes, video-task
``{"code", "message": "<JSON string>", "data": null}``), the upstream envelope's
``ResponseMetadata.Error`` (docs/upstream.md §2.2), and non-JSON bodies such as a proxy's HTML
502 page.
"""

from __future__ import annotations

import email.utils
import html
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from .keys import redact

# --- Explanations (the guide's troubleshooting rows, then the portal's own) ------------------

BYTEPLUS_DIRECT_EXPLANATION = (
    "The API key is routed to the regular AIGC asset group, which cannot create verification "
    "sessions or real-human (LivenessFace) assets: create a token with the Byteplus-Direct group "
    "in Anyfast and configure it as ANYFAST_API_KEY."
)
FACE_MISMATCH_EXPLANATION = (
    "The uploaded face does not match the verified person: upload a clearer, front-facing asset "
    "of the same person."
)
EMPTY_GROUP_ID_EXPLANATION = (
    "Verification is not finished (or did not create a group): ask the person to finish the "
    "verification on their phone and tap Complete; the result is then picked up automatically."
)
GROUP_NOT_FOUND_EXPLANATION = (
    "The asset group was not found for this API key. Either the group belongs to a different "
    "token/account — use the same API key that created the verification session — or an asset "
    "with the same Name already exists in the group (the upstream reports a duplicate Name this "
    "way) — look the asset up by its Name instead of uploading it again."
)
ASSET_NOT_FOUND_EXPLANATION = (
    "The asset does not exist for this API key: it was deleted, it failed processing upstream "
    "(often a face that does not match the verified person), or it belongs to another key."
)
AUTHENTICATION_FAILED_EXPLANATION = (
    "The upstream refused the API key (missing, mistyped, disabled or deleted): set "
    "ANYFAST_API_KEY to a valid Anyfast key created in the Byteplus-Direct group."
)
RATE_LIMITED_EXPLANATION = (
    "The upstream's rate limit for this call was reached; nothing was done, and the request is "
    "tried again a little later."
)
SERVER_ERROR_EXPLANATION = (
    "The upstream failed temporarily (server or gateway error); the request is tried again later."
)
TIMEOUT_EXPLANATION = (
    "The upstream did not answer in time; the request is tried again later. If this persists, "
    "check that ANYFAST_BASE_URL is right and reachable from this server."
)
CONNECTION_EXPLANATION = (
    "The upstream could not be reached: check ANYFAST_BASE_URL and this server's network access "
    "to it. The request is tried again later."
)
LOCAL_RATE_LIMIT_EXPLANATION = (
    "Too many upstream calls are queued in the portal right now to stay within the account's "
    "rate limit; the request is tried again a little later."
)
AMBIGUOUS_CREATE_EXPLANATION = (
    "The upload was sent but no answer came back, so it is unknown whether the upstream created "
    "the asset: the portal looks it up by its Name before uploading again, never creating a twin."
)
CREATE_OUTCOME_UNKNOWN_EXPLANATION = (
    "The upload was sent but the upstream has not answered yet, and the asset is not listed yet: "
    "the upload may still be under way. The portal looks again later (by the asset's Name, so no "
    "twin is ever created)."
)
SESSION_OVER_EXPLANATION = (
    "The upstream no longer knows this verification session: its BytedToken has expired (it "
    "lasts only minutes) or was created with another API key. Start a new verification session "
    "for the person (their invitation stays valid); if the session is recent, check that "
    "ANYFAST_API_KEY is still the key that created it."
)
AMBIGUOUS_WRITE_EXPLANATION = (
    "The request was sent but no answer came back, so it is unknown whether the upstream applied "
    "it: check the object's current state before repeating it."
)
UNEXPECTED_RESPONSE_EXPLANATION = (
    "The upstream answered with something the portal does not understand; check "
    "ANYFAST_BASE_URL points at the Anyfast API (it must serve /volc/asset/...)."
)
ENDPOINT_NOT_FOUND_EXPLANATION = (
    "The upstream address does not serve this API: check ANYFAST_BASE_URL (for example "
    "https://www.anyfast.ai, without /volc/asset)."
)


def explain_asset_error(code: str, message: str = "") -> str:
    """The sentence to show for an asset that ended ``Failed`` with ``Error{Code, Message}``.

    ``FaceMismatch`` is the documented failure (docs/upstream.md §6.2); several faces in one file
    and out-of-envelope media are refused too, under codes the docs do not list.
    """
    text = f"{code} {message}".lower()
    if code == "FaceMismatch" or "face consistency" in text:
        return FACE_MISMATCH_EXPLANATION
    if "multiple" in text and "face" in text:
        return (
            "More than one face was found in the file; a verified group holds one person only: "
            "upload an asset that shows only the verified person."
        )
    if "face" in text:
        return (
            "No usable face of the verified person was found: upload a clearer, front-facing "
            "asset of the same person."
        )
    if "pixel" in text or "resolution" in text or "duration" in text or "too" in text:
        return (
            "The file is outside the upstream's limits (size, resolution, duration or frame "
            f"rate): fix it and upload it again. Upstream said: {code} {message}".rstrip()
        )
    detail = f"{code}: {message}" if message else code
    return (
        f"The upstream could not process this asset ({detail or 'no reason given'}): check it "
        "meets the asset requirements and upload it again."
    )


# --- The hierarchy ----------------------------------------------------------------------------


class UpstreamError(Exception):
    """Base of every failure of an upstream call.

    ``code`` is the upstream's code (``NotFound.group_id``, ``***.CallbackURL``, ``RateLimited``…;
    empty when none was given), ``message`` its message (redacted: never the API key),
    ``http_status`` the HTTP status (``None`` when no response arrived), ``action`` the upstream
    Action (``CreateAsset``…), ``explanation`` one sentence for a person: what it means and how to
    fix it.
    """

    default_explanation: ClassVar[str] = "The upstream call failed."

    def __init__(
        self,
        message: str,
        *,
        action: str = "",
        code: str = "",
        http_status: int | None = None,
        explanation: str | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        secrets = tuple(secrets)
        self.message = redact(message, secrets)
        self.action = action
        self.code = redact(code, secrets)
        self.http_status = http_status
        self.explanation = redact(explanation or self.default_explanation, secrets)
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.action or "upstream"]
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code:
            parts.append(f"[{self.code}]")
        return " ".join(parts) + f": {self.message}"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(action={self.action!r}, http_status={self.http_status!r}, "
            f"code={self.code!r}, message={self.message!r})"
        )


class TransientUpstreamError(UpstreamError):
    """Repeating the same request later may succeed; nothing was done upstream."""

    default_explanation = SERVER_ERROR_EXPLANATION


class UpstreamTimeout(TransientUpstreamError):
    """No answer in time to a request that is safe to repeat (a read, or a connect timeout)."""

    default_explanation = TIMEOUT_EXPLANATION


class UpstreamUnreachable(TransientUpstreamError):
    """The connection could not be made (refused, DNS, TLS), so nothing was sent."""

    default_explanation = CONNECTION_EXPLANATION


class RateLimited(TransientUpstreamError):
    """HTTP 429 (or a throttling code): the request was refused before anything was done.

    ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one.
    """

    default_explanation = RATE_LIMITED_EXPLANATION

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class LocalRateLimitExceeded(TransientUpstreamError):
    """The portal's own limiter could not grant a slot within its maximum wait (no call made)."""

    default_explanation = LOCAL_RATE_LIMIT_EXPLANATION


class RateLimiterUnavailable(TransientUpstreamError):
    """The limiter's shared store (Redis or the SQLite file) failed: no call was made.

    Failing closed keeps the account within its budgets when the count cannot be read.
    """

    default_explanation = (
        "The portal's rate-limit store (ANYFAST_RATE_LIMIT_REDIS_URL or ANYFAST_RATE_LIMIT_FILE) "
        "is not reachable, so no upstream call was made: check Redis or the file's folder."
    )


class UpstreamServerError(TransientUpstreamError):
    """HTTP 5xx, including gateways' HTML error pages."""

    default_explanation = SERVER_ERROR_EXPLANATION


class PermanentUpstreamError(UpstreamError):
    """Repeating the same request cannot succeed: something must be fixed first."""

    default_explanation = "The upstream refused the request."


class AuthenticationFailed(PermanentUpstreamError):
    """HTTP 401: the key is missing, wrong or revoked."""

    default_explanation = AUTHENTICATION_FAILED_EXPLANATION


class WrongTokenGroup(PermanentUpstreamError):
    """``GroupType must be one of [AIGC]``: the key is not in the Byteplus-Direct group."""

    default_explanation = BYTEPLUS_DIRECT_EXPLANATION


class GroupNotFound(PermanentUpstreamError):
    """``NotFound.group_id`` (404): another key's group, or a duplicate Name in the group (G6)."""

    default_explanation = GROUP_NOT_FOUND_EXPLANATION


class AssetNotFound(PermanentUpstreamError):
    """``NotFound.asset_id`` (404)."""

    default_explanation = ASSET_NOT_FOUND_EXPLANATION


class VerificationTokenInvalid(PermanentUpstreamError):
    """The BytedToken is expired or unknown to this key: 404 ``NotFound.BytedToken`` or 400
    ``InvalidParameter.BytedToken`` (the code seen varies). That upstream session is over; the
    person needs a new one."""

    default_explanation = SESSION_OVER_EXPLANATION


class InvalidRequest(PermanentUpstreamError):
    """Any other 4xx: a missing or invalid parameter, a refused file, a denied permission."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        if not kwargs.get("explanation"):
            code = kwargs.get("code") or "invalid request"
            kwargs["explanation"] = (
                f"The upstream refused the request ({code}): {message}. Fix the request or the "
                "file and try again; if it keeps happening this is a bug in the portal."
            )
        super().__init__(message, **kwargs)


class EndpointNotFound(PermanentUpstreamError):
    """A 404 that is not an API error (no JSON error body): the base URL is wrong."""

    default_explanation = ENDPOINT_NOT_FOUND_EXPLANATION


class UnexpectedResponse(PermanentUpstreamError):
    """A success status whose body is not the documented object."""

    default_explanation = UNEXPECTED_RESPONSE_EXPLANATION


class AmbiguousWrite(UpstreamError):
    """A write was sent but its outcome is unknown (read timeout, dropped connection, 5xx).

    Deliberately neither transient nor permanent: repeating it blindly could apply it twice,
    giving up could lose it. Look at the upstream state first.
    """

    default_explanation = AMBIGUOUS_WRITE_EXPLANATION


class AmbiguousCreate(AmbiguousWrite):
    """CreateAsset was sent and no answer came back: ``create_asset_reconciled`` settles it."""

    default_explanation = AMBIGUOUS_CREATE_EXPLANATION


class CreateOutcomeUnknown(TransientUpstreamError):
    """``create_asset_reconciled`` could not settle an ambiguous create yet: the asset is not
    listed and every new attempt went unanswered too. Call it again later; it never creates a
    twin."""

    default_explanation = CREATE_OUTCOME_UNKNOWN_EXPLANATION


# --- Parsing error responses ------------------------------------------------------------------

# ``upstream_error: [NotFound.group_id] The specified asset_group group-x is not found.``; the code
# may be masked by the gateway: ``[***.CallbackURL]`` (docs/upstream.md §5.1 shape 2).
_RELAYED = re.compile(r"upstream_error:\s*\[(?P<code>[^\]]*)\]\s*(?P<message>.*)", re.S)
_WRONG_TOKEN_GROUP = re.compile(r"GroupType must be one of \[AIGC\]", re.I)
_GROUP_NOT_FOUND = re.compile(r"asset[_ ]group\b.*\bnot found", re.I | re.S)
_TOKEN_INVALID = re.compile(r"\bBytedToken\b.*\b(?:not found|expired|invalid)", re.I | re.S)
_ASSET_NOT_FOUND = re.compile(r"\basset\b(?![_ ]group).*\bnot found", re.I | re.S)
# Throttling codes seen in upstream/reseller fixtures (docs/upstream.md §5.2). ``QuotaExceeded``
# alone is an exhausted asset quota, not a rate limit, so it is deliberately absent.
_RATE_LIMIT_CODES = {
    "ratelimited",
    "ratelimitexceeded",
    "requestlimitexceeded",
    "throttling",
    "toomanyrequests",
    "quotaexceeded.qpm",
    "rate_limit_exceeded",
}
_AUTH_CODES = {"invalid_api_key", "authentication_error", "unauthorized"}
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_MAX_MESSAGE = 300


def _code_tail(code: str) -> str:
    """``NotFound.group_id`` and a masked ``***.group_id`` both end in ``group_id``."""
    return code.rsplit(".", 1)[-1].lower()


def _text_of(value: object) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def extract_error(body: object) -> tuple[str, str] | None:
    """``(code, message)`` from a parsed JSON error body, or ``None`` when it has no error.

    Handles, recursively: ``{"error": {"message", "type", "code"}}`` and ``{"error": "..."}``;
    the relayed ``upstream_error: [Code] Message`` inside a message; ``{"code", "message":
    "<JSON string>", "data": null}``; and ``{"ResponseMetadata": {"Error": {"Code",
    "Message"}}}``.
    """
    if not isinstance(body, Mapping):
        return None
    code = message = ""
    metadata = body.get("ResponseMetadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get("Error"), Mapping):
        error = metadata["Error"]
        code, message = _text_of(error.get("Code")), _text_of(error.get("Message"))
    elif isinstance(body.get("error"), Mapping):
        error = body["error"]
        code = _text_of(error.get("code") or error.get("Code"))
        message = _text_of(error.get("message") or error.get("Message"))
        if not code and error.get("type") not in (None, "", "new_api_error"):
            code = _text_of(error.get("type"))
    elif isinstance(body.get("error"), str):
        message = body["error"]
    elif "message" in body and ("code" in body or "data" in body):
        code, message = _text_of(body.get("code")), _text_of(body.get("message"))
        # Shape 3: the message is the upstream's own JSON error, serialised (docs/upstream.md §5.1).
        try:
            nested = json.loads(message)
        except ValueError:
            nested = None
        inner = extract_error(nested)
        if inner is not None:
            code, message = inner[0] or code, inner[1] or message
    elif isinstance(body.get("Error"), Mapping):
        error = body["Error"]
        code, message = _text_of(error.get("Code")), _text_of(error.get("Message"))
    else:
        return None
    relayed = _RELAYED.search(message)
    if relayed:
        code, message = relayed["code"], relayed["message"].strip()
    return code, message


def plain_text(text: str) -> str:
    """A short one-line excerpt of a non-JSON body (an HTML error page's title or text)."""
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.I | re.S)
    raw = title.group(1) if title else _TAG.sub(" ", text)
    return _SPACE.sub(" ", html.unescape(raw)).strip()[:_MAX_MESSAGE]


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(
    *,
    action: str,
    http_status: int,
    body: str,
    headers: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
) -> UpstreamError:
    """Classify an HTTP error response (any status ≥ 400, or a 200 enveloped error)."""
    secrets = tuple(secrets)
    parsed: object = None
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    found = extract_error(parsed)
    is_api_error = found is not None
    code, message = found if found is not None else ("", plain_text(body or ""))
    message = message or f"HTTP {http_status}"
    message = message[:_MAX_MESSAGE] if not is_api_error else message
    common: dict[str, Any] = {
        "action": action,
        "code": code,
        "http_status": http_status,
        "secrets": secrets,
    }
    tail = _code_tail(code)
    lowered = code.lower()
    if _WRONG_TOKEN_GROUP.search(message) or _WRONG_TOKEN_GROUP.search(code):
        return WrongTokenGroup(message, **common)
    if http_status == 401 or lowered in _AUTH_CODES:
        return AuthenticationFailed(message, **common)
    if http_status == 429 or lowered in _RATE_LIMIT_CODES:
        retry_after = parse_retry_after((headers or {}).get("Retry-After"))
        return RateLimited(message, retry_after=retry_after, **common)
    # An empty token (MissingParameter.BytedToken) is the portal's own mistake, not an old token.
    if (tail == "bytedtoken" and not lowered.startswith("missingparameter")) or (
        400 <= http_status < 500 and _TOKEN_INVALID.search(message)
    ):
        return VerificationTokenInvalid(message, **common)
    if tail == "group_id" or (http_status == 404 and _GROUP_NOT_FOUND.search(message)):
        return GroupNotFound(message, **common)
    if tail == "asset_id" or (
        http_status == 404 and code.startswith("NotFound") and _ASSET_NOT_FOUND.search(message)
    ):
        return AssetNotFound(message, **common)
    if http_status >= 500:
        return UpstreamServerError(message, **common)
    # An HTML 404, or the gateway's own "Invalid URL (POST ...)" answer for an unknown route:
    # the base URL is wrong, not the request.
    if http_status == 404 and (
        not is_api_error or lowered == "invalid_url" or message.startswith("Invalid URL")
    ):
        return EndpointNotFound(message, **common)
    if http_status >= 400:
        return InvalidRequest(message, **common)
    # A 2xx whose body is an error (the upstream envelope with ResponseMetadata.Error).
    return InvalidRequest(message, **common)


def mask_byted_token(text: str, token: str | None) -> str:
    """``text`` (the upstream's words, an H5 link, callback parameters) with the BytedToken
    ``token`` cut to its last six characters wherever it appears: the whole one is a credential."""
    return text.replace(token, f"…{token[-6:]}") if token else text


def upstream_outcome(
    call: str, error: UpstreamError | None = None, *, token: str | None = None
) -> dict[str, str]:
    """An upstream call's outcome as audit events record it: ``{"upstream": "<Action> ok"}``, or
    ``"<Action> failed <code>"`` with the upstream's words. No secret: the client never puts the
    key in them, the audit trail masks signed links, and a BytedToken they quote (``token``)
    is cut to its last six characters."""
    if error is None:
        return {"upstream": f"{call} ok"}
    code = error.code or type(error).__name__
    message = mask_byted_token(error.message, token)
    return {"upstream": f"{call} failed {code}", "message": message[:500]}
