"""What the asset workflows share: the audited status change of an asset and who acts."""

from __future__ import annotations

import datetime
import logging
import random
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from assets.models import Asset
from audit.services import audited_update
from upstream import (
    RateLimited,
    UpstreamError,
)

logger = logging.getLogger(__name__)

# A task enqueued with a countdown may start a moment before the row says it is due.
CLAIM_SLACK = datetime.timedelta(seconds=1)
# A sweep handles at most this many rows; the rest wait for the next sweep.
POLL_BATCH = 500
# Who acts, in audit events, when no staff member does: the worker running a task.
WORKER = "worker"


def settle(
    rows: QuerySet[Asset],
    asset: Asset,
    action: str,
    changes: dict[str, Any],
    *,
    detail: dict[str, Any] | None = None,
    actor: Any = None,
) -> int:
    """``rows.update(**changes)`` and, if it applied, the event ``asset.<action>``: status,
    upstream Id and error code before and after, in one transaction."""
    return audited_update(
        rows,
        changes,
        obj=asset,
        action=f"asset.{action}",
        person_id=asset.group.person_id,
        recorded=("status", "upstream_id", "error_code"),
        actor=actor,
        actor_label="" if actor is not None else WORKER,
        detail=detail,
    )


def retry_delay(attempts: int, error: UpstreamError | None = None) -> float:
    """Seconds before attempt ``attempts + 1``: exponential, with jitter, within the settings'
    bounds; never less than a 429's ``Retry-After``."""
    ceiling = min(
        settings.ASSET_RETRY_MAX_SECONDS, settings.ASSET_RETRY_BASE_SECONDS * 2 ** (attempts - 1)
    )
    # Half fixed, half random: never zero, and workers retrying together spread out.
    delay = random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
    if isinstance(error, RateLimited) and error.retry_after:
        delay = max(delay, error.retry_after)
    return delay
