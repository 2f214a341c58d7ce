"""Deletions proven by an independent read: an asset or a group is gone upstream when the
group's listing no longer shows it, not when one call said so.

GetAsset cannot be trusted for LivenessFace assets (docs/upstream.md G10: it may answer NotFound
for an asset ListAssets still lists Active), and a DeleteAsset answered 5xx or not at all may or
may not have acted. So after any ambiguous or NotFound answer the group is listed
(``ListAssets`` with its ``GroupIds``), and only what that listing no longer shows is confirmed.
A LivenessFace group never appears in ListAssetGroups (G3), so a group's deletion is proven by
the same read, whatever DeleteAssetGroup answered: ListAssets of the group shows nothing of it.
Each confirmation says how it was proven (``WithdrawalProof``).
"""

from __future__ import annotations

from assets.models import AssetGroup, GroupType, WithdrawalOutcome, WithdrawalProof
from upstream import (
    AmbiguousWrite,
    AnyfastClient,
    AssetNotFound,
    GroupNotFound,
    TransientUpstreamError,
    UpstreamAsset,
    UpstreamError,
)

STILL_LISTED_EXPLANATION = (
    "The upstream's answer to DeleteAsset ({answer}) did not prove the deletion, and ListAssets of "
    "its group still lists the asset: it is not confirmed. The portal deletes it again later."
)


GROUP_STILL_LISTED_EXPLANATION = (
    "The upstream's answer to DeleteAssetGroup ({answer}) is not proof on its own, and ListAssets "
    "of the group still lists assets in it: the group is not confirmed deleted. The portal "
    "deletes it again later."
)
GROUP_UNPROVEN_EXPLANATION = (
    "DeleteAssetGroup gave no clear answer ({answer}), and ListAssets lists nothing in the group, "
    "which does not tell a deleted group from one its assets' deletions emptied: the group is not "
    "confirmed deleted yet. The portal sends DeleteAssetGroup again; its answer settles it."
)
# What ListAssets of a deleted group said (an audit event records it).
GROUP_LISTING_NOT_FOUND = "NotFound.group_id"
GROUP_LISTING_EMPTY = "no assets"


class StillListed(TransientUpstreamError):
    """DeleteAsset answered ambiguously or NotFound (or DeleteAssetGroup answered anything), but
    the group's listing still shows the asset (or assets of the group): not deleted (yet); try
    again later."""


class Unproven(TransientUpstreamError):
    """DeleteAssetGroup answered ambiguously and the group's listing shows nothing, which proves
    nothing either: try again later (the next answer, OK or NotFound, settles it)."""


def listed_asset(
    upstream: AnyfastClient, group: AssetGroup, upstream_id: str
) -> UpstreamAsset | None:
    """The asset as ListAssets scoped to its group shows it, or ``None`` when it does not (a group
    the upstream no longer knows lists nothing)."""
    try:
        found = upstream.get_assets(
            [upstream_id], group_id=group.group_id, group_type=group.group_type
        )
    except GroupNotFound:
        return None
    return found.get(upstream_id)


def delete_proven(
    upstream: AnyfastClient, upstream_id: str, *, group: AssetGroup, sent_before: bool
) -> tuple[str, str]:
    """DeleteAsset, proven: ``(WithdrawalOutcome, WithdrawalProof)``.

    OK is proof (``delete_answer``). After an ambiguous answer (5xx, timeout, dropped connection)
    or NotFound, the group is listed: gone only if the listing no longer shows it
    (``listing``), else ``StillListed`` is raised and the caller tries again later. NotFound is
    ``already_gone`` only when no DeleteAsset of the portal was sent before (``sent_before``):
    otherwise that earlier call deleted it.
    """
    try:
        upstream.delete_asset(upstream_id)
    except AmbiguousWrite as error:
        _prove_absent(upstream, group, upstream_id, answer=error)
        return WithdrawalOutcome.DELETED, WithdrawalProof.LISTING
    except (AssetNotFound, GroupNotFound) as error:
        _prove_absent(upstream, group, upstream_id, answer=error)
        gone = WithdrawalOutcome.DELETED if sent_before else WithdrawalOutcome.ALREADY_GONE
        return gone, WithdrawalProof.LISTING
    return WithdrawalOutcome.DELETED, WithdrawalProof.DELETE_ANSWER


def _prove_absent(
    upstream: AnyfastClient,
    group: AssetGroup,
    upstream_id: str,
    *,
    answer: AmbiguousWrite | AssetNotFound | GroupNotFound,
) -> None:
    """Return if the group's listing no longer shows the asset; raise ``StillListed`` if it does,
    and ``answer`` itself when the listing cannot prove anything: the group is another key's
    (the upstream hides another key's assets, so their absence proves nothing)."""
    owner = group.api_key_fingerprint
    if owner and owner != upstream.key_fingerprint:
        raise answer
    if listed_asset(upstream, group, upstream_id) is None:
        return
    said = answer.code or type(answer).__name__
    raise StillListed(
        f"DeleteAsset answered {said}, but ListAssets of group {group.group_id} still lists "
        f"{upstream_id}",
        action="DeleteAsset",
        code="StillListed",
        http_status=answer.http_status,
        explanation=STILL_LISTED_EXPLANATION.format(answer=said),
    )


def delete_group_proven(
    upstream: AnyfastClient, group: AssetGroup, *, sent_before: bool
) -> tuple[str, str, str]:
    """DeleteAssetGroup, proven by ListAssets of the group: ``(WithdrawalOutcome,
    WithdrawalProof.GROUP_LISTING, what the listing said)``. The caller has checked that the
    portal's key owns the group (another key's listing shows nothing either).

    Whatever DeleteAssetGroup answers, the group is listed, and confirmed only when the listing
    shows nothing of it: ``NotFound.group_id``, or no asset. After OK or NotFound either will do;
    after an ambiguous answer (5xx, timeout) only ``NotFound.group_id`` does, since an empty
    listing cannot tell a deleted group from one emptied by the assets' own deletions:
    ``Unproven`` is raised and the next attempt's OK or NotFound settles it. While the listing
    shows assets of the group, ``StillListed`` is raised. NotFound is ``already_gone`` only when no
    DeleteAssetGroup of the portal was sent before (``sent_before``).
    """
    answer: UpstreamError | None = None
    try:
        upstream.delete_asset_group(group.group_id)
    except (AmbiguousWrite, GroupNotFound) as error:
        answer = error
    try:
        page = upstream.list_assets(group_type=group.group_type, group_ids=[group.group_id])
    except GroupNotFound:
        listing = GROUP_LISTING_NOT_FOUND
    else:
        said = "OK" if answer is None else answer.code or type(answer).__name__
        if page.items or page.total_count:
            shown = ", ".join(asset.id for asset in page.items[:5])
            raise StillListed(
                f"DeleteAssetGroup answered {said}, but ListAssets of group {group.group_id} "
                f"still lists {max(page.total_count, len(page.items))} asset(s): {shown}",
                action="DeleteAssetGroup",
                code="StillListed",
                http_status=answer.http_status if answer else None,
                explanation=GROUP_STILL_LISTED_EXPLANATION.format(answer=said),
            )
        if isinstance(answer, AmbiguousWrite):
            raise Unproven(
                f"DeleteAssetGroup answered {said}; ListAssets lists nothing in group "
                f"{group.group_id}, which does not prove the group deleted",
                action="DeleteAssetGroup",
                code="Unproven",
                http_status=answer.http_status,
                explanation=GROUP_UNPROVEN_EXPLANATION.format(answer=said),
            )
        listing = GROUP_LISTING_EMPTY
    if isinstance(answer, GroupNotFound) and not sent_before:
        return WithdrawalOutcome.ALREADY_GONE, WithdrawalProof.GROUP_LISTING, listing
    return WithdrawalOutcome.DELETED, WithdrawalProof.GROUP_LISTING, listing


def is_liveness(group: AssetGroup) -> bool:
    """GetAsset cannot be trusted for this group's assets (G10): read them by listing only."""
    return group.group_type == GroupType.LIVENESS_FACE
