"""A withdrawn group is confirmed deleted only when ListAssets shows nothing of it, whatever
DeleteAssetGroup answered: answers the sandbox cannot give, as canned HTTP (``responses``).
The sandbox's own scenarios are in ``test_withdrawal_proof.py``."""

from __future__ import annotations

from typing import Any

import pytest
import responses

from assets.models import AssetGroup, Withdrawal, WithdrawalItem
from assets.services import withdrawals
from audit.models import AuditEvent
from consent import services
from tests.factories import AssetGroupFactory, UserFactory
from tests.upstream_helpers import BASE_URL, SECRET_KEY, asset_json, body_of, url
from upstream import AnyfastClient, NullRateLimiter

pytestmark = pytest.mark.django_db

Item = WithdrawalItem
GROUP_404 = "upstream_error: [NotFound.group_id] The specified asset_group {} is not found."
DELETED = {"json": {"Id": "", "Deleted": True}}
SERVER_ERROR = {"status": 500, "json": {"error": {"message": "internal error"}}}
NOTHING_LISTED = {"json": {"PageNumber": 1, "PageSize": 100, "TotalCount": 0, "Items": []}}


def group_not_found(group: AssetGroup) -> dict[str, Any]:
    return {"status": 404, "json": {"error": {"message": GROUP_404.format(group.group_id)}}}


@pytest.fixture
def upstream():
    with responses.RequestsMock() as mocked:
        yield mocked


@pytest.fixture
def group_item(queued) -> Item:
    """The group item of a revoked consent whose person has no asset: the only item."""
    group = AssetGroupFactory(verified=True)
    consent = group.upstream_session.invitation.consent
    services.consent_revoke(
        record=consent, actor=UserFactory(), channel="email", reason="Changed their mind."
    )
    return Withdrawal.objects.get(consent=consent).items.get(asset__isnull=True)


def work(item: Item, django_capture_on_commit_callbacks) -> Item:
    """Run the item's task now, as a worker would; the row afterwards."""
    client = AnyfastClient(
        BASE_URL, SECRET_KEY, rate_limiter=NullRateLimiter(), sleep=lambda seconds: None
    )
    with django_capture_on_commit_callbacks(execute=True):
        withdrawals.withdrawal_item_process(item_id=item.pk, client=client)
    item.refresh_from_db()
    return item


def test_a_group_delete_answered_ok_is_not_confirmed_while_the_listing_still_shows_assets(
    upstream, group_item, queued, django_capture_on_commit_callbacks
):
    group = group_item.group
    upstream.post(url("DeleteAssetGroup"), **DELETED)
    left = asset_json(Id="asset-20261124120000-left1", GroupId=group.group_id)
    upstream.post(url("ListAssets"), json={"TotalCount": 1, "Items": [left]})

    item = work(group_item, django_capture_on_commit_callbacks)

    assert (item.status, item.outcome, item.proven_by) == (Item.Status.PENDING, "", "")
    assert item.last_error_code == "StillListed"
    assert "DeleteAssetGroup answered OK" in item.last_error
    assert "asset-20261124120000-left1" in item.last_error
    assert "not confirmed deleted" in item.last_error_explanation
    assert item.confirmed_at is None and item.next_attempt_at is not None
    assert ("assets.tasks.withdraw_item", (item.pk,)) in queued.calls  # tried again later
    assert Withdrawal.objects.get(pk=item.withdrawal_id).confirmed_at is None
    assert AssetGroup.objects.get(pk=group.pk).withdrawn_at is None
    assert not AuditEvent.objects.filter(action="asset_group.deleted_upstream").exists()
    assert AuditEvent.objects.filter(action="withdrawal.upstream_error").exists()
    listing = body_of(upstream.calls[1])["Filter"]
    assert listing == {"GroupType": "LivenessFace", "GroupIds": [group.group_id]}


@pytest.mark.parametrize(
    ("delete", "listing", "said"),
    [
        (DELETED, NOTHING_LISTED, "no assets"),
        (DELETED, "not found", "NotFound.group_id"),
        (SERVER_ERROR, "not found", "NotFound.group_id"),
        ("not found", NOTHING_LISTED, "no assets"),
    ],
    ids=["ok-empty", "ok-group-not-found", "500-group-not-found", "not-found-empty"],
)
def test_a_group_is_confirmed_when_the_listing_shows_nothing_of_it(
    upstream, group_item, django_capture_on_commit_callbacks, delete, listing, said
):
    group = group_item.group
    upstream.post(
        url("DeleteAssetGroup"), **(group_not_found(group) if delete == "not found" else delete)
    )
    upstream.post(
        url("ListAssets"), **(group_not_found(group) if listing == "not found" else listing)
    )

    item = work(group_item, django_capture_on_commit_callbacks)

    outcome = Item.Outcome.ALREADY_GONE if delete == "not found" else Item.Outcome.DELETED
    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        outcome,
        Item.Proof.GROUP_LISTING,
    )
    assert AssetGroup.objects.get(pk=group.pk).withdrawn_at is not None
    event = AuditEvent.objects.get(action="asset_group.deleted_upstream")
    assert (event.detail["proven_by"], event.detail["listing"]) == ("group_listing", said)
    assert Withdrawal.objects.get(pk=item.withdrawal_id).confirmed_at is not None


def test_an_ambiguous_group_delete_with_an_empty_listing_waits_for_the_next_answer(
    upstream, group_item, queued, django_capture_on_commit_callbacks
):
    """An empty listing cannot tell a deleted group from one its assets' deletions emptied."""
    upstream.post(url("DeleteAssetGroup"), **SERVER_ERROR)
    upstream.post(url("ListAssets"), **NOTHING_LISTED)

    item = work(group_item, django_capture_on_commit_callbacks)

    assert (item.status, item.proven_by) == (Item.Status.PENDING, "")
    assert item.last_error_code == "Unproven"
    assert "does not prove the group deleted" in item.last_error
    assert "sends DeleteAssetGroup again" in item.last_error_explanation
    assert ("assets.tasks.withdraw_item", (item.pk,)) in queued.calls
    assert AssetGroup.objects.get(pk=group_item.group_id).withdrawn_at is None
