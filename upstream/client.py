"""The portal's only HTTP client of the upstream: Anyfast's ``/volc/asset/*`` endpoints.

Wire contract: docs/upstream.md (cited below as "§n", its gotchas as "Gn"). Every call is
``POST {base_url}/volc/asset/<Action>`` with a bearer key and a PascalCase JSON body; success is
HTTP 200 with the bare result object (§2.1). The upstream's ``{"ResponseMetadata", "Result"}``
envelope is accepted too (§2.2).

What every call gets:

* explicit ``(connect, read)`` timeouts — ``ANYFAST_CONNECT_TIMEOUT`` and ``ANYFAST_READ_TIMEOUT``,
  or ``ANYFAST_CREATE_READ_TIMEOUT`` for creates, which the gateway may hold open for minutes
  (§7, G18);
* a slot from the deployment-wide rate limiter (``ratelimit``) before each attempt (§8);
* retries of *reads* (Get*/List*) on transient errors: exponential backoff with full jitter, up
  to ``ANYFAST_READ_RETRIES`` more attempts, honouring ``Retry-After`` on 429;
* *writes* (Create*/Update*/Delete*) are repeated only when nothing can have happened upstream:
  on a 429 (refused before processing) or a failure to connect (nothing was sent). After a read
  timeout, a dropped connection or a 5xx the outcome is unknown and ``AmbiguousWrite`` /
  ``AmbiguousCreate`` is raised: see ``create_asset_reconciled``.

The key is sent only in the ``Authorization`` header; logs, errors and ``repr`` show its
fingerprint (``keys.key_fingerprint``).
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, NewConnectionError

from . import errors
from .keys import key_fingerprint, redact
from .ratelimit import NullRateLimiter, RateLimiter, rate_limiter_from_settings
from .types import (
    AssetCreated,
    AssetPage,
    AssetRenamed,
    Deleted,
    UpstreamAsset,
    UpstreamAssetType,
    UpstreamGroupType,
    VerificationResult,
    VerificationSessionStarted,
)

logger = logging.getLogger(__name__)

USER_AGENT = f"talent-consent-portal/0.1 (+upstream) python-requests/{requests.__version__}"
API_PATH = "/volc/asset/"
MAX_PAGE_SIZE = 100  # §4.6: PageSize ≤ 100
# A safety stop for page iteration, should TotalCount ever disagree with the pages.
MAX_PAGES = 1000

# Calls that change upstream state; the others are reads and safe to repeat.
WRITE_ACTIONS = frozenset(
    {
        "CreateVisualValidateSession",
        "CreateAsset",
        "CreateAssetGroup",
        "UpdateAsset",
        "UpdateAssetGroup",
        "DeleteAsset",
        "DeleteAssetGroup",
    }
)
# Calls the gateway may hold open for a long time (§7): they get ANYFAST_CREATE_READ_TIMEOUT.
# Not CreateVisualValidateSession: a person waits for it, its H5 link lives 120 s, and an
# orphaned session is harmless, so it keeps the ordinary read timeout.
CREATE_ACTIONS = frozenset({"CreateAsset", "CreateAssetGroup"})


class Limiter(Protocol):
    def acquire(self, action: str, *, max_wait: float | None = None) -> float: ...


@dataclass(frozen=True)
class Attempt:
    """One HTTP attempt, for callers that record every outbound call (``on_attempt``).

    ``outcome`` is ``"ok"``, or the error class name; ``http_status`` is ``None`` when no response
    arrived. Carries no body and no key.
    """

    action: str
    attempt: int
    http_status: int | None
    outcome: str
    elapsed: float
    key_fingerprint: str


class _DefaultTimeoutAdapter(HTTPAdapter):
    """Never a request without a timeout (zulip's ``OutgoingSession`` habit), and no retries
    inside urllib3: the client decides what is safe to repeat."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        self.default_timeout = timeout
        super().__init__(max_retries=0)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().send(request, *args, **kwargs)


def outgoing_session(timeout: tuple[float, float]) -> requests.Session:
    """A ``requests.Session`` with a default timeout, no urllib3 retries and our User-Agent."""
    session = requests.Session()
    adapter = _DefaultTimeoutAdapter(timeout)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers["User-Agent"] = USER_AGENT
    return session


def _never_sent(exc: requests.RequestException) -> bool:
    """Whether the request certainly did not reach the server (a failed connect)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        # A refused certificate stops the handshake before any byte of the request; other TLS
        # failures (a corrupt record mid-response) can come after the server received it all.
        return _caused_by(exc, ssl.SSLCertVerificationError)
    if isinstance(exc, requests.ConnectionError):
        reason: object = exc.args[0] if exc.args else None
        if isinstance(reason, MaxRetryError):
            reason = reason.reason
        # NameResolutionError is a NewConnectionError too.
        return isinstance(reason, NewConnectionError)
    return False


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``kind`` is ``exc`` or anywhere in its causes or its arguments (urllib3 wraps)."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        pending += [current.__cause__, current.__context__, *current.args]
        pending.append(getattr(current, "reason", None))
    return False


class AnyfastClient:
    """Client of the upstream asset API; one method per endpoint.

    ``base_url`` and ``api_key`` default to ``settings.ANYFAST_BASE_URL`` / ``ANYFAST_API_KEY``;
    ``session`` to a fresh ``outgoing_session``; ``rate_limiter`` to the one the settings describe
    (pass ``NullRateLimiter()`` to bypass it). ``reconcile_attempts`` and ``reconcile_wait`` shape
    ``create_asset_reconciled``. ``sleep`` and ``rng`` exist for tests.
    Thread-safe as far as ``requests.Session`` is (one client per thread is safest).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        session: requests.Session | None = None,
        rate_limiter: Limiter | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        create_read_timeout: float | None = None,
        read_retries: int | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 30.0,
        reconcile_attempts: int = 2,
        reconcile_wait: float = 3.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> None:
        from django.conf import settings

        self.base_url = (base_url or settings.ANYFAST_BASE_URL).rstrip("/")
        self._api_key = settings.ANYFAST_API_KEY if api_key is None else api_key
        self.key_fingerprint = key_fingerprint(self._api_key)
        self.connect_timeout = (
            settings.ANYFAST_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        )
        self.read_timeout = settings.ANYFAST_READ_TIMEOUT if read_timeout is None else read_timeout
        self.create_read_timeout = (
            settings.ANYFAST_CREATE_READ_TIMEOUT
            if create_read_timeout is None
            else create_read_timeout
        )
        self.read_retries = settings.ANYFAST_READ_RETRIES if read_retries is None else read_retries
        self.session = session or outgoing_session((self.connect_timeout, self.read_timeout))
        self.rate_limiter: Limiter = (
            rate_limiter if rate_limiter is not None else rate_limiter_from_settings()
        )
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_retry_after = max_retry_after
        self.reconcile_attempts = reconcile_attempts
        self.reconcile_wait = reconcile_wait
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.on_attempt = on_attempt
        self._deadline: float | None = None

    def __repr__(self) -> str:
        return f"AnyfastClient(base_url={self.base_url!r}, key={self.key_fingerprint!r})"

    def close(self) -> None:
        """Close the pooled connections (a client made per task should be closed, or used in
        ``with``)."""
        self.session.close()

    @contextmanager
    def within(self, seconds: float) -> Iterator[AnyfastClient]:
        """Calls made in the block end within ``seconds``: each attempt's connect and read
        timeouts, its wait for a rate-limit slot and the pause before a retry are cut to what
        is left; once nothing is left the call fails as ``UpstreamTimeout`` (``BudgetSpent``).
        Nested blocks keep the earlier end."""
        outer = self._deadline
        end = time.monotonic() + seconds
        self._deadline = end if outer is None else min(outer, end)
        try:
            yield self
        finally:
            self._deadline = outer

    def _remaining(self, action: str) -> float | None:
        """Seconds left of the ``within`` budget (None: no budget); raises once it is spent."""
        if self._deadline is None:
            return None
        remaining = self._deadline - time.monotonic()
        if remaining <= 0.05:
            raise errors.UpstreamTimeout(
                "the time budget of this call was spent",
                action=action,
                code="BudgetSpent",
                secrets=self._secrets,
            )
        return remaining

    def __enter__(self) -> AnyfastClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- Verification (§4.1, §4.2, §6.1) -----------------------------------------------------

    def create_visual_validate_session(self, callback_url: str) -> VerificationSessionStarted:
        """Start a real-person verification session (§4.1).

        ``callback_url`` is required in practice (G1): the person's browser is redirected there
        (GET) after they tap Complete, with ``bytedToken``, ``resultCode`` (10000 = success) etc.
        The H5 link works once and for 120 s, so call this when the person is ready. A timeout
        raises ``AmbiguousWrite``; an orphaned session is harmless (it expires), so the caller may
        simply start another one.
        """
        # §4.1 CreateVisualValidateSession: {"CallbackURL"} → {"BytedToken","CallbackURL","H5Link"}
        data = self._call("CreateVisualValidateSession", {"CallbackURL": callback_url})
        started = VerificationSessionStarted.from_json(data)
        if not started.byted_token or not started.h5_link:
            raise self._unexpected("CreateVisualValidateSession", "no BytedToken or H5Link")
        if not started.callback_url:
            started = VerificationSessionStarted(started.byted_token, started.h5_link, callback_url)
        return started

    def get_visual_validate_result(self, byted_token: str) -> VerificationResult:
        """The verification's LivenessFace group (§4.2): ``group_id == ""`` until the person has
        finished (``.is_complete`` is False, ``.explanation`` says what to tell them). Store the
        GroupId the first time it appears: an expired token cannot recover it (G3)."""
        # §4.2 GetVisualValidateResult: {"BytedToken"} → {"GroupId"}
        data = self._call("GetVisualValidateResult", {"BytedToken": byted_token})
        return VerificationResult.from_json(data)

    # --- Assets (§4.4 to §4.9) --------------------------------------------------------------------

    def create_asset(self, group_id: str, name: str, asset_type: str, url: str) -> AssetCreated:
        """Ask the upstream to download ``url`` into ``group_id`` as asset ``name`` (§4.4).

        ``asset_type`` is ``Image``, ``Video`` or ``Audio``; the matching billing ``model`` is
        sent. The asset starts ``Processing``: poll ``get_asset`` until Active or Failed.

        Never repeated blindly. A 429 or a failed connect is retried (nothing was created), but
        when the request was sent and no answer came back (read timeout, dropped connection,
        5xx) this raises ``AmbiguousCreate``. Callers use ``create_asset_reconciled``, which
        settles that case; this method is the single HTTP call.
        """
        if asset_type not in UpstreamAssetType.MODELS:
            raise ValueError(f"asset_type must be one of {sorted(UpstreamAssetType.MODELS)}")
        # §4.4 CreateAsset: {"model","GroupId","Name","AssetType","URL"} → {"Id"}
        body = {
            "model": UpstreamAssetType.MODELS[asset_type],
            "GroupId": group_id,
            "Name": name,
            "AssetType": asset_type,
            "URL": url,
        }
        data = self._call("CreateAsset", body)
        asset_id = data.get("Id")
        if not isinstance(asset_id, str) or not asset_id:
            raise self._unexpected("CreateAsset", "no asset Id")
        return AssetCreated(id=asset_id, name=name, group_id=group_id, asset_type=asset_type)

    def create_asset_reconciled(
        self,
        group_id: str,
        name: str,
        asset_type: str,
        url: str,
        *,
        group_type: str = UpstreamGroupType.LIVENESS_FACE,
    ) -> AssetCreated:
        """Create asset ``name`` in ``group_id``, or find the one an earlier attempt created.

        Never a twin, never a lost asset, provided ``name`` is unique to this upload (the
        portal's ``Asset.upstream_name`` is). The same call may be repeated at any time, e.g. by
        a task retrying after a crash: it settles whatever the earlier attempts did.

        The contract of an ambiguous create (``AmbiguousCreate``: read timeout, dropped
        connection, 5xx): the upstream may have created the asset, may not have, or may *still
        be* creating it. Anyfast holds creates open for minutes (§7), so a lookup by Name right
        after the timeout usually finds nothing although the asset is on its way: an empty
        lookup proves nothing. What settles it is the upstream's refusal of a duplicate Name
        (G6), answered as ``NotFound.group_id``: sending the same create again either creates
        the asset (the first attempt never landed, or is still in flight and will itself be
        refused as the duplicate) or is refused because the asset exists — then it is looked up.

        So: create. After an ambiguous answer, wait (``reconcile_wait`` seconds, longer each
        time), look the Name up, and if it is not listed yet, send the create again. A
        ``NotFound.group_id`` answer is looked up by Name and the asset found is returned; when
        nothing has the Name, ``GroupNotFound`` is raised (the group is another key's or gone),
        or ``CreateOutcomeUnknown`` if an attempt of this call may still be landing. After
        ``reconcile_attempts`` unanswered creates it raises ``CreateOutcomeUnknown``, a
        transient error: call again later with the same arguments.
        """
        ambiguous: errors.AmbiguousCreate | None = None
        for attempt in range(1, self.reconcile_attempts + 1):
            try:
                return self.create_asset(group_id, name, asset_type, url)
            except errors.AmbiguousCreate as error:
                ambiguous = error
            except errors.GroupNotFound:
                found = self.find_asset_by_name(group_id, name, group_type=group_type)
                if found is not None:
                    logger.info("upstream: CreateAsset %s already existed as %s", name, found.id)
                    return _created(found, name, group_id, asset_type)
                if ambiguous is None:
                    raise
                break
            self.sleep(self.reconcile_wait * attempt)
            found = self.find_asset_by_name(group_id, name, group_type=group_type)
            if found is not None:
                logger.info("upstream: the ambiguous CreateAsset %s created %s", name, found.id)
                return _created(found, name, group_id, asset_type)
        raise errors.CreateOutcomeUnknown(
            f"CreateAsset of {name} in {group_id} is still unsettled"
            + (f" (last attempt: {ambiguous.code})" if ambiguous else ""),
            action="CreateAsset",
            code=ambiguous.code if ambiguous else "",
            secrets=self._secrets,
        )

    def get_asset(
        self,
        asset_id: str,
        *,
        group_id: str | None = None,
        name: str | None = None,
        group_type: str = UpstreamGroupType.LIVENESS_FACE,
    ) -> UpstreamAsset:
        """The asset's current state (§4.5).

        CONFLICT §4.5 / G10: on Anyfast, GetAsset may answer ``NotFound.asset_id`` for an asset
        of a LivenessFace group that ListAssets scoped to the group does find. So when GetAsset
        says NotFound and ``group_id`` is known, the group is listed (``GroupIds=[group_id]``,
        ``GroupType=group_type``, and ``Name=name`` when given, which makes it one short page)
        and the asset picked by Id; only if that misses too is ``AssetNotFound`` raised. To poll
        many assets of a group, use ``get_assets``.
        """
        # §4.5 GetAsset: {"Id"} → asset object
        try:
            data = self._call("GetAsset", {"Id": asset_id})
        except errors.AssetNotFound:
            if not group_id:
                raise
            listed = self.iter_assets(group_type=group_type, group_ids=[group_id], name=name)
            for asset in listed:
                if asset.id == asset_id:
                    logger.info("upstream: GetAsset missed %s, ListAssets found it", asset_id)
                    return asset
            raise
        asset = UpstreamAsset.from_json(data)
        if not asset.id:
            raise self._unexpected("GetAsset", "no asset Id")
        return asset

    def get_assets(
        self,
        asset_ids: Iterable[str],
        *,
        group_id: str,
        group_type: str = UpstreamGroupType.LIVENESS_FACE,
    ) -> dict[str, UpstreamAsset]:
        """The current state of many assets of one group, by Id: what a sweep polls.

        One ListAssets pass over the group (pages of 100, newest first), stopping once every
        asked Id was seen: at most ⌈group size / 100⌉ calls whatever the number of Ids, usually
        one, instead of a GetAsset per asset (and a listing per asset where GetAsset cannot see
        LivenessFace assets, §4.5). ListAssets carries Failed assets with their ``Error``.

        An Id missing from the result was not listed for this key: deleted, another key's, or
        (rarely) skipped because the group changed between two pages. Ask again in the next
        sweep, or settle it with ``get_asset``.
        """
        wanted = set(asset_ids)
        found: dict[str, UpstreamAsset] = {}
        if not wanted:
            return found
        for asset in self.iter_assets(group_type=group_type, group_ids=[group_id]):
            if asset.id in wanted:
                found[asset.id] = asset
                if len(found) == len(wanted):
                    break
        return found

    def list_assets(
        self,
        *,
        group_type: str,
        group_ids: Sequence[str] | None = None,
        name: str | None = None,
        statuses: Sequence[str] | None = None,
        page_number: int = 1,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AssetPage:
        """One page of assets (§4.6). ``group_type`` (``LivenessFace`` or ``AIGC``) is required
        by the upstream (G11); ``name`` is a fuzzy match upstream; pages start at 1."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if page_number < 1:
            raise ValueError("page_number starts at 1")
        filter_: dict[str, Any] = {"GroupType": group_type}
        if group_ids:
            filter_["GroupIds"] = list(group_ids)
        if name:
            filter_["Name"] = name
        if statuses:
            filter_["Statuses"] = list(statuses)
        # §4.6 ListAssets: {"model","Filter","PageNumber","PageSize"} → {"PageNumber","PageSize",
        # "TotalCount","Items"}
        body = {
            "model": UpstreamAssetType.DEFAULT_MODEL,
            "Filter": filter_,
            "PageNumber": page_number,
            "PageSize": page_size,
        }
        data = self._call("ListAssets", body)
        return AssetPage.from_json(data, page_number=page_number, page_size=page_size)

    def iter_assets(
        self,
        *,
        group_type: str,
        group_ids: Sequence[str] | None = None,
        name: str | None = None,
        statuses: Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[UpstreamAsset]:
        """Every asset matching the filter, page after page (one ListAssets call per page)."""
        for page_number in range(1, MAX_PAGES + 1):
            page = self.list_assets(
                group_type=group_type,
                group_ids=group_ids,
                name=name,
                statuses=statuses,
                page_number=page_number,
                page_size=page_size,
            )
            yield from page.items
            if not page.has_next:
                return

    def find_asset_by_name(
        self, group_id: str, name: str, *, group_type: str = UpstreamGroupType.LIVENESS_FACE
    ) -> UpstreamAsset | None:
        """The asset named exactly ``name`` in ``group_id``, or ``None``.

        The portal gives every upload a unique Name, so finding it means its create happened.
        Not finding it right after an ambiguous create proves nothing (the create may still be
        under way): ``create_asset_reconciled`` handles that. The upstream's Name filter is
        fuzzy (§4.6), hence the exact comparison here.
        """
        for asset in self.iter_assets(group_type=group_type, group_ids=[group_id], name=name):
            if asset.name == name and asset.group_id in ("", group_id):
                return asset
        return None

    def update_asset(self, asset_id: str, name: str) -> AssetRenamed:
        """Rename an asset, the only change the upstream allows (§4.8)."""
        # §4.8 UpdateAsset: {"model","Id","Name"} → {"Id"}
        data = self._call(
            "UpdateAsset", {"model": UpstreamAssetType.DEFAULT_MODEL, "Id": asset_id, "Name": name}
        )
        return AssetRenamed(id=_str_or(data.get("Id"), asset_id), name=name)

    def delete_asset(self, asset_id: str) -> Deleted:
        """Delete an asset (§4.9). A timeout or 5xx raises ``AmbiguousWrite``: list its group
        (``get_assets``; GetAsset cannot see LivenessFace assets, G10) to learn whether it is
        gone before repeating."""
        # §4.9 DeleteAsset: {"model","Id"} → {"Id","Deleted":true}
        data = self._call("DeleteAsset", {"model": UpstreamAssetType.DEFAULT_MODEL, "Id": asset_id})
        return Deleted(id=_str_or(data.get("Id"), asset_id))

    def delete_asset_group(self, group_id: str) -> Deleted:
        """Delete a group and every asset in it, irreversibly (§4.9; upstream 2341606).

        The Anyfast answer shape is INFERRED (§12.3): ``{"Id","Deleted":true}`` or the upstream's
        ``{}`` are both accepted.
        """
        # §4.9 DeleteAssetGroup: {"Id"} → {"Id","Deleted":true} (INFERRED) or {}
        data = self._call("DeleteAssetGroup", {"Id": group_id})
        return Deleted(id=_str_or(data.get("Id"), group_id))

    # --- Transport ----------------------------------------------------------------------------

    def _unexpected(self, action: str, what: str) -> errors.UnexpectedResponse:
        return errors.UnexpectedResponse(
            f"unexpected answer: {what}", action=action, http_status=200, secrets=self._secrets
        )

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key,) if self._api_key else ()

    def _call(self, action: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST one action, with rate limiting, retries and error classification."""
        is_write = action in WRITE_ACTIONS
        read_timeout = self.create_read_timeout if action in CREATE_ACTIONS else self.read_timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = self._remaining(action)
            if remaining is None:
                self.rate_limiter.acquire(action)
                timeout = (self.connect_timeout, read_timeout)
            else:
                self.rate_limiter.acquire(action, max_wait=remaining)
                left = self._remaining(action) or remaining
                timeout = (min(self.connect_timeout, left), min(read_timeout, left))
            started = time.monotonic()
            status: int | None = None
            try:
                try:
                    response = self.session.post(
                        f"{self.base_url}{API_PATH}{action}",
                        data=json.dumps(body),
                        headers={
                            "Authorization": f"Bearer {self._api_key}",
                            "Content-Type": "application/json",
                            "Accept": "application/json",
                        },
                        timeout=timeout,
                    )
                except requests.RequestException as exc:
                    raise self._transport_error(action, exc, is_write) from None
                status = response.status_code
                result = self._result(action, response)
            except errors.UpstreamError as error:
                self._record(action, attempt, status, type(error).__name__, started)
                delay = self._retry_delay(error, attempt)
                deadline = self._deadline
                if delay is not None and deadline and time.monotonic() + delay >= deadline:
                    delay = None  # no time left for another attempt
                if delay is None:
                    logger.warning(
                        "upstream %s failed (attempt %d, key %s): %s",
                        action,
                        attempt,
                        self.key_fingerprint,
                        error,
                    )
                    raise
                logger.info(
                    "upstream %s: %s; retrying in %.2f s (attempt %d of %d)",
                    action,
                    error,
                    delay,
                    attempt,
                    self.read_retries + 1,
                )
                self.sleep(delay)
                continue
            self._record(action, attempt, status, "ok", started)
            return result

    def _record(
        self, action: str, attempt: int, status: int | None, outcome: str, started: float
    ) -> None:
        elapsed = time.monotonic() - started
        logger.debug(
            "upstream %s attempt %d: %s %s in %.0f ms (key %s)",
            action,
            attempt,
            status if status is not None else "-",
            outcome,
            elapsed * 1000,
            self.key_fingerprint,
        )
        if self.on_attempt is not None:
            self.on_attempt(
                Attempt(action, attempt, status, outcome, elapsed, self.key_fingerprint)
            )

    def _retry_delay(self, error: errors.UpstreamError, attempt: int) -> float | None:
        """Seconds to wait before trying again, or ``None`` to give up and raise ``error``."""
        if attempt > self.read_retries or not isinstance(error, errors.TransientUpstreamError):
            return None
        # Writes reach this point only with errors where nothing happened upstream (429, failed
        # connect): everything ambiguous was turned into AmbiguousWrite, which is not transient.
        if isinstance(error, errors.RateLimited) and error.retry_after is not None:
            if error.retry_after > self.max_retry_after:
                return None
            # Honour Retry-After, plus a little jitter so that waiting workers do not stampede.
            return error.retry_after + self.rng.uniform(0, self.backoff_base / 5)
        # Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And
        # Jitter"): uniform in [0, min(cap, base·2^(n-1))].
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return self.rng.uniform(0, ceiling)

    def _transport_error(
        self, action: str, exc: requests.RequestException, is_write: bool
    ) -> errors.UpstreamError:
        """Classify a failure without a response."""
        detail = redact(f"{type(exc).__name__}: {exc}", self._secrets)[:300]
        common: dict[str, Any] = {"action": action, "secrets": self._secrets}
        if _never_sent(exc):
            if isinstance(exc, requests.ConnectTimeout):
                return errors.UpstreamTimeout(detail, code="ConnectTimeout", **common)
            return errors.UpstreamUnreachable(detail, code="ConnectionError", **common)
        code = "ReadTimeout" if isinstance(exc, requests.Timeout) else "ConnectionDropped"
        if is_write:
            cls = errors.AmbiguousCreate if action == "CreateAsset" else errors.AmbiguousWrite
            return cls(detail, code=code, **common)
        if isinstance(exc, requests.Timeout):
            return errors.UpstreamTimeout(detail, code=code, **common)
        if isinstance(exc, requests.ConnectionError):
            return errors.UpstreamUnreachable(detail, code=code, **common)
        # InvalidURL, MissingSchema…: a configuration error, not worth retrying.
        return errors.InvalidRequest(
            detail,
            code=type(exc).__name__,
            explanation="The request could not be made: check ANYFAST_BASE_URL.",
            **common,
        )

    def _result(self, action: str, response: requests.Response) -> dict[str, Any]:
        """The result object of a response, or the classified error it carries."""
        status = response.status_code
        if status != 200:
            error = errors.error_from_response(
                action=action,
                http_status=status,
                body=response.text,
                headers=response.headers,
                secrets=self._secrets,
            )
            # A 5xx to a write may come after the upstream acted (a gateway timing out on it).
            if action in WRITE_ACTIONS and isinstance(error, errors.UpstreamServerError):
                cls = errors.AmbiguousCreate if action == "CreateAsset" else errors.AmbiguousWrite
                raise cls(
                    error.message,
                    action=action,
                    code=error.code,
                    http_status=status,
                    secrets=self._secrets,
                )
            raise error
        try:
            data = response.json()
        except ValueError:
            raise errors.UnexpectedResponse(
                "the answer is not JSON: " + errors.plain_text(response.text)[:100],
                action=action,
                http_status=status,
                secrets=self._secrets,
            ) from None
        if not isinstance(data, dict):
            raise self._unexpected(action, "not a JSON object")
        # §2.2: the upstream envelope. Anyfast answers bare objects, but accept both; an envelope
        # whose ResponseMetadata carries an Error is an error whatever the HTTP status.
        metadata = data.get("ResponseMetadata")
        if isinstance(metadata, dict):
            if isinstance(metadata.get("Error"), dict):
                raise errors.error_from_response(
                    action=action,
                    http_status=status,
                    body=response.text,
                    headers=response.headers,
                    secrets=self._secrets,
                )
            result = data.get("Result")
            return result if isinstance(result, dict) else {}
        return data


def _created(asset: UpstreamAsset, name: str, group_id: str, asset_type: str) -> AssetCreated:
    return AssetCreated(
        id=asset.id, name=name, group_id=group_id, asset_type=asset.asset_type or asset_type
    )


def _str_or(value: object, default: str) -> str:
    return value if isinstance(value, str) and value else default


__all__ = [
    "AnyfastClient",
    "Attempt",
    "NullRateLimiter",
    "RateLimiter",
    "outgoing_session",
]


@contextmanager
def client_or_default(client: AnyfastClient | None) -> Iterator[AnyfastClient]:
    """The given client (left open: its owner closes it), or a new one from the settings, closed
    afterwards. Services take an optional client so that tests and sweeps can share one."""
    if client is not None:
        yield client
        return
    with AnyfastClient() as made:
        yield made
