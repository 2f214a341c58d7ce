"""Workflows that write asset rows. ``consent`` calls these; they never call ``consent``."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from assets.models import AssetGroup, GroupType


@transaction.atomic
def asset_group_record_liveness(
    *,
    person_id: int,
    group_id: str,
    api_key_fingerprint: str,
    upstream_verification_id: int | None,
) -> AssetGroup:
    """Record the LivenessFace group a verification made (GetVisualValidateResult's GroupId).

    Idempotent: a GroupId already recorded for the same person returns that row (linking it to
    ``upstream_verification_id`` if it had no session). The same GroupId for another person is
    refused: a LivenessFace group holds one person only. The fingerprint is that of the API key
    that created the verification session, which owns the group upstream.
    """
    group = AssetGroup.objects.select_for_update().filter(group_id=group_id).first()
    if group is not None:
        if group.person_id != person_id:
            raise ValidationError(f"Group {group_id} already belongs to another person.")
        if group.upstream_verification_id is None and upstream_verification_id is not None:
            group.upstream_verification_id = upstream_verification_id
            group.save(update_fields=["upstream_verification"])
        return group
    return AssetGroup.objects.create(
        group_id=group_id,
        group_type=GroupType.LIVENESS_FACE,
        person_id=person_id,
        upstream_verification_id=upstream_verification_id,
        api_key_fingerprint=api_key_fingerprint,
    )
