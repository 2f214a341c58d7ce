"""The handlers of ``POST /sandbox/volc/asset/<Action>``, one function per upstream action.

Each handler takes the authenticated ``Caller`` and the parsed JSON body and returns the bare
result object (Anyfast strips the upstream envelope), or raises ``ApiError``. Shapes follow
docs/upstream.md §3-4; where the contract is silent the choice is marked SANDBOX.
"""

from __future__ import annotations

import datetime
import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from assets import media
from sandbox import faces
from sandbox.download import download
from sandbox.errors import (
    aigc_only,
    asset_not_found,
    gateway_error,
    group_not_found,
    invalid_parameter,
    missing_parameter,
    upstream_error,
)
from sandbox.ids import new_asset_id, new_byted_token, new_group_id, new_link_id
from sandbox.models import (
    AssetStatus,
    AssetType,
    GroupType,
    SandboxAsset,
    SandboxGroup,
    SandboxSession,
)

PROJECT_NAME = "default"
# Anyfast's billing field per AssetType (docs/upstream.md §2.1).
MODEL_FOR_ASSET_TYPE = {
    AssetType.IMAGE: "volc-asset",
    AssetType.VIDEO: "volc-asset-video",
    AssetType.AUDIO: "volc-asset-audio",
}
FACE_MISMATCH = ("FaceMismatch", "Face consistency verification failed.")
# SANDBOX: the upstream refuses several faces without documenting the code
# (docs/upstream.md §12.10).
MULTIPLE_FACES = ("MultipleFacesDetected", "Multiple faces were detected in the material.")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the fingerprint of the Bearer key, and whether it is AIGC-only.

    An AIGC-only key is refused only what the guide says it cannot do: create verification
    sessions and LivenessFace assets. Everything else answers as for any key that owns no
    LivenessFace group (an empty list, ``NotFound``), so a read succeeding proves nothing about
    the key's token group.
    """

    fingerprint: str
    aigc_only: bool


Body = dict[str, Any]
Handler = Callable[[Caller, Body], dict[str, Any]]


# --- Body fields ------------------------------------------------------------------------------


def _required_str(body: Body, field: str) -> str:
    value = body.get(field)
    if value is None or value == "":
        raise missing_parameter(field)
    if not isinstance(value, str):
        raise invalid_parameter(field, f"The parameter {field} must be a string.")
    return value


def _optional_str(body: Body, field: str, *, max_length: int) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_parameter(field, f"The parameter {field} must be a string.")
    if len(value) > max_length:
        raise invalid_parameter(field, f"The parameter {field} exceeds {max_length} characters.")
    return value


def _string_list(container: Body, field: str) -> list[str] | None:
    value = container.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise invalid_parameter(field, f"The parameter {field} must be a list of strings.")
    return value


def _filter(body: Body) -> Body:
    value = body.get("Filter") or {}
    if not isinstance(value, dict):
        raise invalid_parameter("Filter", "The parameter Filter must be an object.")
    return value


def _positive_int(body: Body, field: str, *, default: int, maximum: int | None = None) -> int:
    value = body.get(field, default)
    valid = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    if not valid or (maximum is not None and value > maximum):
        upper = f" and at most {maximum}" if maximum else ""
        raise invalid_parameter(
            field, f"The parameter {field} must be an integer of at least 1{upper}."
        )
    return value


def _paginate(queryset: QuerySet, body: Body) -> tuple[int, int, int, list]:
    """``(PageNumber, PageSize, TotalCount, rows)`` of the requested page (PageSize ≤ 100)."""
    number = _positive_int(body, "PageNumber", default=1)
    size = _positive_int(body, "PageSize", default=10, maximum=100)
    total = queryset.count()
    start = (number - 1) * size
    return number, size, total, list(queryset[start : start + size])


def _sorted(queryset: QuerySet, body: Body, fields: dict[str, str]) -> QuerySet:
    sort_by = body.get("SortBy") or "CreateTime"
    sort_order = body.get("SortOrder") or "Desc"
    if sort_by not in fields:
        raise invalid_parameter("SortBy", f"SortBy must be one of [{', '.join(fields)}]")
    if sort_order not in ("Asc", "Desc"):
        raise invalid_parameter("SortOrder", "SortOrder must be one of [Asc, Desc]")
    prefix = "-" if sort_order == "Desc" else ""
    return queryset.order_by(f"{prefix}{fields[sort_by]}", f"{prefix}pk")


# --- Lookups that enforce ownership -----------------------------------------------------------


def _owned_group(caller: Caller, group_id: str) -> SandboxGroup:
    """The caller's group, or ``NotFound.group_id`` (404) as for another key's group."""
    group = SandboxGroup.objects.filter(group_id=group_id).first()
    if group is None or group.owner_fingerprint != caller.fingerprint:
        raise group_not_found(group_id)
    return group


def _owned_asset(caller: Caller, asset_id: str) -> SandboxAsset:
    """The caller's asset, or ``NotFound.asset_id`` (404)."""
    asset = SandboxAsset.objects.select_related("group").filter(asset_id=asset_id).first()
    if asset is None or asset.group.owner_fingerprint != caller.fingerprint:
        raise asset_not_found(asset_id)
    return asset


def _group_type(value: Any) -> str:
    if value not in GroupType.values:
        raise invalid_parameter(
            "Filter.GroupType", f"GroupType must be one of [{', '.join(GroupType.values)}]"
        )
    return value


# --- Response objects -------------------------------------------------------------------------


def iso(moment: datetime.datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, as the upstream writes CreateTime/UpdateTime."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def presigned_url(asset: SandboxAsset, now: datetime.datetime) -> str:
    """A URL shaped like the upstream's 12-hour TOS link, regenerated per read.

    SANDBOX: it points at a ``.invalid`` host and cannot be fetched; clients must use
    ``asset://<Id>`` anyway (reference G14).
    """
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    signature = hashlib.sha256(f"{asset.asset_id}:{stamp}".encode()).hexdigest()
    query = urlencode(
        {
            "X-Tos-Algorithm": "TOS4-HMAC-SHA256",
            "X-Tos-Date": stamp,
            "X-Tos-Expires": "43200",
            "X-Tos-Signature": signature,
        }
    )
    return f"https://ark-media-asset.tos-ap-southeast-1.sandbox.invalid/{asset.asset_id}?{query}"


def asset_object(asset: SandboxAsset, now: datetime.datetime) -> dict[str, Any]:
    """The asset as GetAsset and ListAssets describe it; ``Error`` only when Failed."""
    status = asset.status_at(now)
    data: dict[str, Any] = {
        "Id": asset.asset_id,
        "Name": asset.name,
        "URL": presigned_url(asset, now),
        "AssetType": asset.asset_type,
        "GroupId": asset.group.group_id,
        "Status": status,
    }
    if status == AssetStatus.FAILED:
        data["Error"] = {"Code": asset.error_code, "Message": asset.error_message}
    data["ProjectName"] = PROJECT_NAME
    data["CreateTime"] = iso(asset.created_at)
    data["UpdateTime"] = iso(asset.update_time_at(now))
    return data


def group_object(group: SandboxGroup) -> dict[str, Any]:
    return {
        "Id": group.group_id,
        "Name": group.name,
        "Title": group.name,  # upstream: "about to be deprecated", still returned
        "Description": group.description,
        "GroupType": group.group_type,
        "ProjectName": PROJECT_NAME,
        "CreateTime": iso(group.created_at),
        "UpdateTime": iso(group.updated_at),
    }


# --- Verification -----------------------------------------------------------------------------


def h5_link(session: SandboxSession) -> str:
    """The phone page of a session, under the portal's public URL so that a phone reaches it."""
    path = reverse("sandbox:h5", args=[session.link_id])
    query = urlencode({"bytedToken": session.byted_token, "lng": "en"})
    return f"{settings.PORTAL_PUBLIC_URL}{path}?{query}"


def create_visual_validate_session(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"CallbackURL"}`` → ``{"BytedToken","CallbackURL","H5Link"}`` (docs/upstream.md §4.1).

    An AIGC-only key gets ``GroupType must be one of [AIGC]``, the refusal the guide documents.
    """
    if caller.aigc_only:
        raise aigc_only()
    callback_url = body.get("CallbackURL")
    if not callback_url:
        # Verbatim from the live API, masked code included (docs/upstream.md §4.1, G1).
        raise upstream_error(
            400, "***.CallbackURL", "The required parameter CallbackURL is missing."
        )
    parts = urlsplit(callback_url) if isinstance(callback_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_parameter("CallbackURL", "CallbackURL must be an http(s) URL.")
    now = timezone.now()
    session = SandboxSession.objects.create(
        byted_token=new_byted_token(now),
        callback_url=callback_url,
        link_id=new_link_id(),
        owner_fingerprint=caller.fingerprint,
        created_at=now,
    )
    return {
        "BytedToken": session.byted_token,
        "CallbackURL": session.callback_url,
        "H5Link": h5_link(session),
    }


def get_visual_validate_result(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"BytedToken"}`` → ``{"GroupId"}``: ``""`` until the person completed
    (docs/upstream.md §4.2).

    SANDBOX (docs/upstream.md §12.2 is open): a failed verification keeps answering ``""``; a
    token past ``SANDBOX_TOKEN_TTL`` answers 400 ``InvalidParameter.BytedToken ... has expired``
    even when it had produced a group; an unknown token, or another key's, answers 404
    ``NotFound.BytedToken``. Queries do not consume the token.
    """
    token = _required_str(body, "BytedToken")
    session = (
        SandboxSession.objects.select_related("group")
        .filter(byted_token=token, owner_fingerprint=caller.fingerprint)
        .first()
    )
    if session is None:
        raise upstream_error(
            404, "NotFound.BytedToken", f"The specified BytedToken {token} is not found."
        )
    if session.token_is_expired(timezone.now()):
        raise invalid_parameter("BytedToken", f"The specified BytedToken {token} has expired.")
    return {"GroupId": session.group.group_id if session.group else ""}


# --- Groups -----------------------------------------------------------------------------------


def create_asset_group(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"Name","Description"?,"GroupType"?}`` → ``{"Id"}``; AIGC groups only
    (docs/upstream.md §4.3)."""
    name = _required_str(body, "Name")
    if len(name) > 64:
        raise invalid_parameter("Name", "The parameter Name exceeds 64 characters.")
    description = _optional_str(body, "Description", max_length=300) or ""
    if body.get("GroupType", GroupType.AIGC) != GroupType.AIGC:
        # LivenessFace groups come only from a completed verification.
        raise invalid_parameter("GroupType", "GroupType must be one of [AIGC]")
    now = timezone.now()
    group = SandboxGroup.objects.create(
        group_id=new_group_id(now),
        group_type=GroupType.AIGC,
        name=name,
        description=description,
        owner_fingerprint=caller.fingerprint,
        created_at=now,
        updated_at=now,
    )
    return {"Id": group.group_id}


def list_asset_groups(caller: Caller, body: Body) -> dict[str, Any]:
    """The caller's AIGC groups. LivenessFace groups are never listed (docs/upstream.md §4.7, G3).

    SANDBOX: ``Filter.GroupType`` defaults to AIGC; asking for LivenessFace lists nothing.
    """
    filters = _filter(body)
    group_type = _group_type(filters.get("GroupType", GroupType.AIGC))
    groups = SandboxGroup.objects.filter(
        owner_fingerprint=caller.fingerprint, group_type=GroupType.AIGC
    )
    if group_type == GroupType.LIVENESS_FACE:
        groups = groups.none()
    group_ids = _string_list(filters, "GroupIds")
    if group_ids is not None:
        groups = groups.filter(group_id__in=group_ids)
    name = _optional_str(filters, "Name", max_length=64)
    if name:
        groups = groups.filter(name__icontains=name)
    groups = _sorted(groups, body, {"CreateTime": "created_at", "UpdateTime": "updated_at"})
    number, size, total, rows = _paginate(groups, body)
    return {
        "TotalCount": total,
        "Items": [group_object(group) for group in rows],
        "PageNumber": number,
        "PageSize": size,
    }


def update_asset_group(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"Id","Name"?,"Description"?}`` → ``{"Id"}``."""
    group = _owned_group(caller, _required_str(body, "Id"))
    name = _optional_str(body, "Name", max_length=64)
    description = _optional_str(body, "Description", max_length=300)
    if name is not None:
        group.name = name
    if description is not None:
        group.description = description
    group.updated_at = timezone.now()
    group.save(update_fields=["name", "description", "updated_at"])
    return {"Id": group.group_id}


def delete_asset_group(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"Id"}`` → ``{"Id","Deleted":true}`` (shape INFERRED, docs/upstream.md §12.3); deletes its
    assets too."""
    group = _owned_group(caller, _required_str(body, "Id"))
    group_id = group.group_id
    group.delete()
    return {"Id": group_id, "Deleted": True}


# --- Assets -----------------------------------------------------------------------------------


def create_asset(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"model","GroupId","Name","AssetType","URL"}`` → ``{"Id"}`` (docs/upstream.md §4.4).

    Downloads the URL, refuses files outside the limits with 400
    ``InvalidParameter.<violation code>``, and decides the outcome at once from the face marker
    (LivenessFace groups): the asset reads Processing for ``SANDBOX_PROCESSING_SECONDS``
    (video: ``SANDBOX_VIDEO_PROCESSING_SECONDS``), then Active or Failed.
    """
    asset_type = _required_str(body, "AssetType")
    if asset_type not in AssetType.values:
        raise invalid_parameter("AssetType", "AssetType must be one of [Image, Video, Audio]")
    expected_model = MODEL_FOR_ASSET_TYPE[AssetType(asset_type)]
    if body.get("model") != expected_model:
        raise gateway_error(
            400,
            f"model must be {expected_model} for AssetType {asset_type}",
            code="invalid_model",
        )
    group_id = _required_str(body, "GroupId")
    name = _required_str(body, "Name")
    url = _required_str(body, "URL")
    if len(name) > 64:
        raise invalid_parameter("Name", "The parameter Name exceeds 64 characters.")
    if (
        caller.aigc_only
        and SandboxGroup.objects.filter(
            group_id=group_id, group_type=GroupType.LIVENESS_FACE
        ).exists()
    ):
        # The guide: such keys "cannot create verification sessions or LivenessFace assets".
        raise aigc_only()
    group = _owned_group(caller, group_id)
    if group.assets.filter(name=name).exists():
        # The live API's misleading answer to a duplicate Name (reference G6).
        raise group_not_found(group_id)

    downloaded = download(url)
    info = _checked_media(downloaded.content, filename=downloaded.filename, asset_type=asset_type)
    identity, outcome, error = _face_outcome(group, downloaded.content, asset_type=asset_type)

    now = timezone.now()
    processing = (
        settings.SANDBOX_VIDEO_PROCESSING_SECONDS
        if asset_type == AssetType.VIDEO
        else settings.SANDBOX_PROCESSING_SECONDS
    )
    try:
        with transaction.atomic():
            asset = SandboxAsset.objects.create(
                asset_id=new_asset_id(now),
                group=group,
                name=name,
                asset_type=asset_type,
                source_url=url,
                content_type=info.content_type or downloaded.content_type,
                size_bytes=info.size_bytes,
                sha256=info.sha256,
                face_identity=identity or "",
                outcome=outcome,
                error_code=error[0] if error else "",
                error_message=error[1] if error else "",
                created_at=now,
                updated_at=now,
                ready_at=now + datetime.timedelta(seconds=processing),
            )
    except IntegrityError as exc:
        # A twin with the same Name won the race, or the group was deleted meanwhile.
        raise group_not_found(group_id) from exc
    return {"Id": asset.asset_id}


def _checked_media(content: bytes, *, filename: str, asset_type: str) -> media.MediaInfo:
    """The probed file, or 400 ``InvalidParameter.<Code>`` for the first limit it breaks."""
    try:
        info = media.probe_media(io.BytesIO(content), filename=filename)
    except media.MediaRejected as exc:
        violation = exc.violations[0]
        code = upstream_limit_code(violation.code, None)
        raise invalid_parameter(code, violation.message) from exc
    if info.kind != asset_type.lower():
        raise invalid_parameter(
            "AssetType", f"The file is a {info.kind} file, not a supported {asset_type.lower()}."
        )
    violations = media.check_limits(info)
    if violations:
        violation = violations[0]
        raise invalid_parameter(upstream_limit_code(violation.code, info), violation.message)
    return info


# SANDBOX: the upstream names only PixelCountTooSmall (docs/upstream.md §12.10); the other codes
# follow its pattern.
_LIMIT_CODES = {
    "unsupported_format": "FileFormat",
    "unreadable": "FileFormat",
    "file_too_large": "FileSizeTooLarge",
    "image_too_small": "ResolutionTooSmall",
    "video_too_small": "ResolutionTooSmall",
    "image_too_large": "ResolutionTooLarge",
    "video_too_large": "ResolutionTooLarge",
    "aspect_ratio": "AspectRatio",
    "too_short": "DurationTooShort",
    "too_long": "DurationTooLong",
}


def upstream_limit_code(code: str, info: media.MediaInfo | None) -> str:
    """The upstream-style code for an ``assets.media`` violation code."""
    if code == "pixel_count" and info is not None and info.width and info.height:
        low = media.LIMITS[info.kind].pixels
        small = low is not None and info.width * info.height < low.low
        return "PixelCountTooSmall" if small else "PixelCountTooLarge"
    if code == "fps" and info is not None and info.fps is not None:
        fps = media.LIMITS[info.kind].fps
        return "FrameRateTooLow" if fps is not None and info.fps < fps.low else "FrameRateTooHigh"
    return _LIMIT_CODES.get(code, "".join(part.title() for part in code.split("_")))


def _face_outcome(
    group: SandboxGroup, content: bytes, *, asset_type: str
) -> tuple[str | None, str, tuple[str, str] | None]:
    """``(identity read, outcome, error)`` of the face check.

    Only images and videos in LivenessFace groups are compared (``sandbox.faces``). A file
    without a face marker counts as showing the verified person; ``crowd`` fails with
    MultipleFacesDetected; any other identity than the verified one fails with FaceMismatch.
    """
    if group.group_type != GroupType.LIVENESS_FACE or asset_type == AssetType.AUDIO:
        return None, AssetStatus.ACTIVE, None
    identity = faces.face_identity_of(io.BytesIO(content), kind=asset_type.lower())
    if identity == faces.MULTIPLE_FACES:
        return identity, AssetStatus.FAILED, MULTIPLE_FACES
    if identity is not None and identity != group.verified_identity:
        return identity, AssetStatus.FAILED, FACE_MISMATCH
    return identity, AssetStatus.ACTIVE, None


def get_asset(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"Id"}`` → the asset object, or 404 ``NotFound.asset_id`` (docs/upstream.md §4.5).

    With ``SANDBOX_GETASSET_HIDES_LIVENESS`` it plays one integrator's report of the live API:
    GetAsset answers ``NotFound.asset_id`` for every asset of a LivenessFace group, which only
    ListAssets scoped to the group then finds (docs/upstream.md §4.5, CONFLICT between reports).
    """
    asset = _owned_asset(caller, _required_str(body, "Id"))
    if (
        settings.SANDBOX_GETASSET_HIDES_LIVENESS
        and asset.group.group_type == GroupType.LIVENESS_FACE
    ):
        raise asset_not_found(asset.asset_id)
    return asset_object(asset, timezone.now())


def list_assets(caller: Caller, body: Body) -> dict[str, Any]:
    """The caller's assets matching ``Filter`` (``GroupType`` required, reference G11)."""
    filters = _filter(body)
    if not filters.get("GroupType"):
        raise gateway_error(400, "GroupType is missing", code="invalid_request")
    group_type = _group_type(filters["GroupType"])
    now = timezone.now()
    assets = SandboxAsset.objects.select_related("group").filter(
        group__owner_fingerprint=caller.fingerprint, group__group_type=group_type
    )
    group_ids = _string_list(filters, "GroupIds")
    if group_ids is not None:
        assets = assets.filter(group__group_id__in=group_ids)
    name = _optional_str(filters, "Name", max_length=64)
    if name:
        assets = assets.filter(name__icontains=name)  # the upstream's Name filter is fuzzy
    statuses = _string_list(filters, "Statuses")
    if statuses is not None:
        unknown = set(statuses) - set(AssetStatus.values)
        if unknown:
            raise invalid_parameter(
                "Filter.Statuses", "Statuses must be among [Active, Processing, Failed]"
            )
        assets = assets.with_statuses(statuses, now)
    ordered = _sorted(
        assets,
        body,
        # UpdateTime is derived from the clock; the end of processing orders it closely enough.
        {"CreateTime": "created_at", "UpdateTime": "ready_at", "GroupId": "group__group_id"},
    )
    number, size, total, rows = _paginate(ordered, body)
    return {
        "PageNumber": number,
        "PageSize": size,
        "TotalCount": total,
        "Items": [asset_object(asset, now) for asset in rows],
    }


def update_asset(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"Id","Name"}`` → ``{"Id"}``; only the Name can change (docs/upstream.md §4.8).

    SANDBOX: renaming onto another asset's Name in the group answers the same misleading
    ``NotFound.group_id`` as CreateAsset.
    """
    asset = _owned_asset(caller, _required_str(body, "Id"))
    name = _optional_str(body, "Name", max_length=64)
    if name is not None and name != asset.name:
        asset.name = name
        asset.updated_at = timezone.now()
        try:
            with transaction.atomic():
                asset.save(update_fields=["name", "updated_at"])
        except IntegrityError as exc:
            raise group_not_found(asset.group.group_id) from exc
    return {"Id": asset.asset_id}


def delete_asset(caller: Caller, body: Body) -> dict[str, Any]:
    """``{"Id"}`` → ``{"Id","Deleted":true}`` (docs/upstream.md §4.9)."""
    asset = _owned_asset(caller, _required_str(body, "Id"))
    asset_id = asset.asset_id
    asset.delete()
    return {"Id": asset_id, "Deleted": True}


ACTIONS: dict[str, Handler] = {
    "CreateVisualValidateSession": create_visual_validate_session,
    "GetVisualValidateResult": get_visual_validate_result,
    "CreateAssetGroup": create_asset_group,
    "ListAssetGroups": list_asset_groups,
    "UpdateAssetGroup": update_asset_group,
    "DeleteAssetGroup": delete_asset_group,
    "CreateAsset": create_asset,
    "GetAsset": get_asset,
    "ListAssets": list_assets,
    "UpdateAsset": update_asset,
    "DeleteAsset": delete_asset,
}
