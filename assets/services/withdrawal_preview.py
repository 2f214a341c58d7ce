"""What ending a consent would withdraw, read before anything changes: the revoke confirmation
shows it so staff know which assets and groups leave the upstream and which producers are told.

The same choices as ``withdrawal_start`` (its ``_groups_to_delete``), without writing anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

from assets.models import Asset, AssetGroup, ReferenceCopy
from assets.services.withdrawals import _groups_to_delete
from consent.models import ConsentRecord


@dataclass(frozen=True)
class WithdrawalPreview:
    assets: list[Asset]
    groups: list[AssetGroup]
    groups_decision: str
    producers: Sequence[AbstractBaseUser]


def withdrawal_preview(*, consent: ConsentRecord) -> WithdrawalPreview:
    """The assets, asset groups and producers that ending ``consent`` now would affect."""
    groups, decision = _groups_to_delete(consent)
    assets = list(
        Asset.objects.filter(consent=consent)
        .exclude(status=Asset.Status.WITHDRAWN)
        .select_related("group")
        .order_by("pk")
    )
    assets += (
        Asset.objects.filter(group__in=groups)
        .exclude(consent=consent)
        .exclude(status=Asset.Status.WITHDRAWN)
        .select_related("group")
        .order_by("pk")
    )
    copied = ReferenceCopy.objects.filter(asset__in=assets).values("user_id")
    producers = list(get_user_model().objects.filter(pk__in=copied).order_by("username"))
    return WithdrawalPreview(
        assets=assets, groups=groups, groups_decision=decision, producers=producers
    )
