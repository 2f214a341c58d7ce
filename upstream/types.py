"""Typed results of the upstream calls, parsed defensively.

Unknown fields are ignored (the upstream adds fields such as ``ProjectName``, ``Moderation`` or
``LastInferenceTime`` — docs/upstream.md §4.5), missing optional fields get empty values, and a
value of the wrong type is treated as missing rather than crashing the caller. Required
identifiers (an asset's ``Id``, a session's ``BytedToken``) are checked by the client, which
raises ``UnexpectedResponse`` when they are absent.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import EMPTY_GROUP_ID_EXPLANATION, explain_asset_error


class UpstreamAssetType:
    """Upstream ``AssetType`` values and the Anyfast billing ``model`` each needs (§2.1)."""

    IMAGE = "Image"
    VIDEO = "Video"
    AUDIO = "Audio"

    MODELS = {IMAGE: "volc-asset", VIDEO: "volc-asset-video", AUDIO: "volc-asset-audio"}
    #: The ``model`` of every call that uploads nothing (List/Update/Delete, docs/upstream.md §2.1).
    DEFAULT_MODEL = "volc-asset"


class UpstreamAssetStatus:
    """Upstream asset states (docs/upstream.md §6.2). Anyfast's schema also lists an unexplained
    ``Inactive`` (docs/upstream.md §12.4): it is neither usable nor failed.

    Not ``assets.models.AssetStatus``, the portal's own life cycle of an asset row."""

    PROCESSING = "Processing"
    ACTIVE = "Active"
    FAILED = "Failed"
    INACTIVE = "Inactive"


class UpstreamGroupType:
    """Upstream ``GroupType`` values (``assets.models.GroupType`` holds the same two as choices)."""

    LIVENESS_FACE = "LivenessFace"
    AIGC = "AIGC"


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def _int(data: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key)
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default


def parse_time(value: object) -> datetime.datetime | None:
    """ISO-8601 timestamps as the upstream writes them (``2026-05-28T06:09:22Z``, or with an
    offset); ``None`` when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


@dataclass(frozen=True)
class VerificationSessionStarted:
    """CreateVisualValidateSession's answer (docs/upstream.md §4.1).

    ``h5_link`` is single-use and valid for ``ANYFAST_H5_LINK_TTL`` (120 s); ``byted_token`` for
    ``ANYFAST_TOKEN_TTL`` (30 min, CONFLICT §12.1).
    """

    byted_token: str
    h5_link: str
    callback_url: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerificationSessionStarted:
        return cls(
            byted_token=_str(data, "BytedToken"),
            h5_link=_str(data, "H5Link"),
            callback_url=_str(data, "CallbackURL"),
        )


@dataclass(frozen=True)
class VerificationResult:
    """GetVisualValidateResult's answer (docs/upstream.md §4.2): ``group_id`` is ``""`` until the
    person completes verification (and stays so if they never tap Complete)."""

    group_id: str

    @property
    def is_complete(self) -> bool:
        return bool(self.group_id)

    @property
    def explanation(self) -> str:
        """Empty when complete; otherwise the guide's "GroupId is empty" row."""
        return "" if self.is_complete else EMPTY_GROUP_ID_EXPLANATION

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> VerificationResult:
        return cls(group_id=_str(data, "GroupId"))


@dataclass(frozen=True)
class AssetCreated:
    """CreateAsset's answer: only the ``Id`` (docs/upstream.md §4.4); the asset is still
    Processing."""

    id: str
    name: str
    group_id: str
    asset_type: str

    @property
    def asset_uri(self) -> str:
        return f"asset://{self.id}"


@dataclass(frozen=True)
class UpstreamAsset:
    """An asset as GetAsset/ListAssets describe it (docs/upstream.md §4.5).

    ``url`` is the upstream's 12-hour presigned copy: never put it into generation requests, use
    ``asset_uri`` (G14).
    """

    id: str
    name: str
    url: str
    asset_type: str
    group_id: str
    status: str
    error_code: str = ""
    error_message: str = ""
    create_time: datetime.datetime | None = None
    update_time: datetime.datetime | None = None

    @property
    def is_active(self) -> bool:
        return self.status == UpstreamAssetStatus.ACTIVE

    @property
    def is_failed(self) -> bool:
        return self.status == UpstreamAssetStatus.FAILED

    @property
    def is_processing(self) -> bool:
        return self.status == UpstreamAssetStatus.PROCESSING

    @property
    def asset_uri(self) -> str:
        """``asset://<Id>``, what Seedance 2.0 requests reference (lowercase scheme, §2.3)."""
        return f"asset://{self.id}"

    @property
    def explanation(self) -> str:
        """For a failed asset, what it means and what to do (``FaceMismatch``…); else empty."""
        if not self.is_failed:
            return ""
        return explain_asset_error(self.error_code, self.error_message)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UpstreamAsset:
        error = data.get("Error")
        error = error if isinstance(error, Mapping) else {}
        return cls(
            id=_str(data, "Id"),
            name=_str(data, "Name"),
            url=_str(data, "URL"),
            asset_type=_str(data, "AssetType"),
            group_id=_str(data, "GroupId"),
            status=_str(data, "Status"),
            error_code=_str(error, "Code"),
            error_message=_str(error, "Message"),
            create_time=parse_time(data.get("CreateTime")),
            update_time=parse_time(data.get("UpdateTime")),
        )


@dataclass(frozen=True)
class AssetPage:
    """One page of ListAssets (docs/upstream.md §4.6); pages are numbered from 1."""

    page_number: int
    page_size: int
    total_count: int
    items: tuple[UpstreamAsset, ...] = field(default_factory=tuple)

    @property
    def has_next(self) -> bool:
        """Whether a later page may hold more items."""
        return bool(self.items) and self.page_number * self.page_size < self.total_count

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, page_number: int, page_size: int) -> AssetPage:
        raw_items = data.get("Items")
        items = tuple(
            UpstreamAsset.from_json(item)
            for item in (raw_items if isinstance(raw_items, list) else [])
            if isinstance(item, Mapping)
        )
        return cls(
            # Echoed page fields win; the request's values stand in when they are missing.
            page_number=_int(data, "PageNumber", page_number) or page_number,
            page_size=_int(data, "PageSize", page_size) or page_size,
            total_count=_int(data, "TotalCount", len(items)),
            items=items,
        )


@dataclass(frozen=True)
class AssetRenamed:
    """UpdateAsset's answer (upstream ``{"Id"}``, docs/upstream.md §4.8)."""

    id: str
    name: str


@dataclass(frozen=True)
class Deleted:
    """DeleteAsset / DeleteAssetGroup's answer (``{"Id", "Deleted": true}``,
    docs/upstream.md §4.9)."""

    id: str
