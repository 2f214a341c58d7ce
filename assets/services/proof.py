"""Deletions proven by an independent read: an asset is gone upstream when its group's listing no
longer shows it, not when one call said so.

GetAsset cannot be trusted for LivenessFace assets (docs/upstream.md G10: it may answer NotFound
for an asset ListAssets still lists Active), and a DeleteAsset answered 5xx or not at all may or
may not have acted. So after any ambiguous or NotFound answer the group is listed
(``ListAssets`` with its ``GroupIds``), and only what that listing no longer shows is confirmed;
each confirmation says how it was proven (``WithdrawalProof``).
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
)

STILL_LISTED_EXPLANATION = (
    "The upstream's answer to DeleteAsset ({answer}) did not prove the deletion, and ListAssets of "
    "its group still lists the asset: it is not confirmed. The portal deletes it again later."
)


class StillListed(TransientUpstreamError):
    """DeleteAsset answered ambiguously or NotFound, but the group's listing still shows the
    asset: not deleted (yet); try again later."""


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


def is_liveness(group: AssetGroup) -> bool:
    """GetAsset cannot be trusted for this group's assets (G10): read them by listing only."""
    return group.group_type == GroupType.LIVENESS_FACE
