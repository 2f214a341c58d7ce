"""Sandbox state for the portal's demo data, so its references resolve like real ones.

``seed_demo`` records people who were verified and assets that went Active long ago; these
functions make the same group and assets exist in the sandbox, owned by the configured key, so
GetAsset, ListAssets and the copied ``asset://`` references behave as they would upstream.
"""

from __future__ import annotations

from django.utils import timezone

from sandbox.ids import key_fingerprint, new_asset_id, new_group_id
from sandbox.models import AssetStatus, GroupType, SandboxAsset, SandboxGroup


def demo_group_create(*, api_key: str, identity: str) -> SandboxGroup:
    """A LivenessFace group as if ``identity`` had completed verification with ``api_key``."""
    now = timezone.now()
    return SandboxGroup.objects.create(
        group_id=new_group_id(now),
        group_type=GroupType.LIVENESS_FACE,
        name=f"liveness-demo-{identity}",
        owner_fingerprint=key_fingerprint(api_key),
        verified_identity=identity,
        created_at=now,
        updated_at=now,
    )


def demo_asset_create(
    *, group: SandboxGroup, name: str, asset_type: str, content_type: str, sha256: str, size: int
) -> SandboxAsset:
    """An asset of ``group`` that has already finished processing as Active."""
    now = timezone.now()
    return SandboxAsset.objects.create(
        asset_id=new_asset_id(now),
        group=group,
        name=name,
        asset_type=asset_type,
        source_url="demo data (seed_demo)",
        content_type=content_type,
        size_bytes=size,
        sha256=sha256,
        face_identity=group.verified_identity,
        outcome=AssetStatus.ACTIVE,
        created_at=now,
        ready_at=now,
        updated_at=now,
    )
