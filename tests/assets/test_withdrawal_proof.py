"""A withdrawal is proven by listing (issue 14): after an ambiguous or NotFound DeleteAsset, an
item is confirmed only once ListAssets of its group no longer lists the asset, never because
GetAsset (blind to LivenessFace assets, docs/upstream.md G10) said NotFound; a group only once
ListAssets shows nothing of it, whatever DeleteAssetGroup answered. Against the sandbox over
real HTTP, which plays G10 and deletes that act and then answer 500.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, AssetGroup, Withdrawal, WithdrawalItem
from assets.services import pipeline as asset_pipeline
from assets.services import withdrawals
from assets.services.proof import StillListed
from audit.models import AuditEvent
from consent import services
from sandbox.models import SandboxAsset, SandboxGroup
from tests.assets.test_asset_pipeline import calls, quick_client, submit, upload, verified_group
from tests.factories import UserFactory
from upstream import AssetNotFound

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

Item = WithdrawalItem
Outcome = WithdrawalItem.Outcome
Proof = WithdrawalItem.Proof
# To the second, with the time zone (the settings' TIME_ZONE is UTC in the tests).
TO_THE_SECOND = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture
def g10(upstream, settings, queued):
    """The sandbox playing G10 (GetAsset cannot see LivenessFace assets), processing at once,
    its faults (set by each test) limited to DeleteAsset."""
    settings.SANDBOX_PROCESSING_SECONDS = 0
    settings.ASSET_POLL_FIRST_SECONDS = 0
    settings.SANDBOX_GETASSET_HIDES_LIVENESS = True
    settings.SANDBOX_FAULT_ACTIONS = ["DeleteAsset"]
    return settings


def active_asset(group: AssetGroup, name: str = "face.png") -> Asset:
    asset = submit(upload(group, name=name))
    asset_pipeline.assets_poll(client=quick_client())
    asset.refresh_from_db()
    assert asset.status == Asset.Status.ACTIVE
    return asset


def listed(asset: Asset) -> bool:
    """What ListAssets of the asset's group says (the read legal's evidence relies on)."""
    group = asset.group
    page = quick_client().list_assets(group_type=group.group_type, group_ids=[group.group_id])
    return any(item.id == asset.upstream_id for item in page.items)


def revoke(group: AssetGroup) -> Withdrawal:
    consent = group.upstream_session.invitation.consent
    services.consent_revoke(
        record=consent, actor=UserFactory(), channel="email", reason="Changed their mind."
    )
    return Withdrawal.objects.get(consent=consent)


def work_item(item: Item) -> Item:
    """Run the item's task now, as a worker would (due at once); the row afterwards."""
    Item.objects.filter(pk=item.pk).update(next_attempt_at=None)
    withdrawals.withdrawal_item_process(item_id=item.pk, client=quick_client())
    item.refresh_from_db()
    return item


def test_a_delete_that_acted_but_answered_500_is_confirmed_by_the_listing(g10):
    group = verified_group()
    asset = active_asset(group)
    withdrawal = revoke(group)
    g10.SANDBOX_FAULT_RATE_500_AFTER = 1.0  # DeleteAsset deletes, then answers 500
    lists_before = calls("ListAssets")

    item = work_item(withdrawal.items.get(asset=asset))

    assert not listed(asset)
    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        Outcome.DELETED,
        Proof.LISTING,
    )
    assert item.delete_sent_at is not None and item.delete_sent_at <= item.confirmed_at
    assert calls("ListAssets") > lists_before  # proven by a listing of the group
    assert Asset.objects.get(pk=asset.pk).status == Asset.Status.WITHDRAWN
    event = AuditEvent.objects.get(action="asset.withdrawn_upstream", object_id=str(asset.pk))
    assert event.detail["proven_by"] == "listing"


def test_a_delete_answered_500_without_acting_is_not_confirmed_while_still_listed(g10, queued):
    group = verified_group()
    asset = active_asset(group)
    withdrawal = revoke(group)
    g10.SANDBOX_FAULT_RATE_500 = 1.0  # DeleteAsset answers 500 and deletes nothing

    item = work_item(withdrawal.items.get(asset=asset))

    assert listed(asset)  # still Active upstream: GetAsset's NotFound would have lied
    assert (item.status, item.outcome, item.last_error_code) == (
        Item.Status.PENDING,
        "",
        "StillListed",
    )
    assert item.confirmed_at is None and item.next_attempt_at is not None
    assert "still lists" in item.last_error
    assert ("assets.tasks.withdraw_item", (item.pk,)) in queued.calls  # tried again later
    assert Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is None
    assert AuditEvent.objects.filter(action="withdrawal.upstream_error").exists()

    g10.SANDBOX_FAULT_RATE_500 = 0.0  # the retry goes through
    item = work_item(item)

    assert not listed(asset)
    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        Outcome.DELETED,
        Proof.DELETE_ANSWER,
    )


def test_a_not_found_after_our_own_lost_delete_is_recorded_as_our_deletion(g10):
    group = verified_group()
    asset = active_asset(group)
    withdrawal = revoke(group)
    g10.SANDBOX_FAULT_RATE_500 = 1.0
    item = work_item(withdrawal.items.get(asset=asset))
    assert item.status == Item.Status.PENDING and item.delete_sent_at is not None
    # The portal's delayed call lands after all (as a gateway holding it would let it).
    SandboxAsset.objects.filter(asset_id=asset.upstream_id).delete()
    g10.SANDBOX_FAULT_RATE_500 = 0.0

    item = work_item(item)  # DeleteAsset now answers NotFound

    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        Outcome.DELETED,  # not "already gone": it was the portal's own call
        Proof.LISTING,
    )


def test_an_asset_gone_before_the_first_delete_is_already_gone_proven_by_listing(g10):
    group = verified_group()
    asset = active_asset(group)
    quick_client().delete_asset(asset.upstream_id)  # someone else deleted it
    withdrawal = revoke(group)

    item = work_item(withdrawal.items.get(asset=asset))

    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        Outcome.ALREADY_GONE,
        Proof.LISTING,
    )


def test_staffs_withdraw_confirms_only_what_the_listing_no_longer_shows(g10, superuser_client):
    group = verified_group()
    kept, gone = active_asset(group, "kept.png"), active_asset(group, "gone.png")
    changelist = reverse("admin:assets_asset_changelist")

    g10.SANDBOX_FAULT_RATE_500 = 1.0  # answered 500, nothing deleted
    response = superuser_client.post(
        changelist, {"action": "withdraw_assets", "_selected_action": [kept.pk]}, follow=True
    )
    assert "still lists" in response.content.decode()
    assert listed(kept)
    assert Asset.objects.get(pk=kept.pk).status == Asset.Status.ACTIVE
    with pytest.raises(StillListed):
        withdrawals.asset_withdraw(asset=Asset.objects.get(pk=kept.pk), client=quick_client())

    g10.SANDBOX_FAULT_RATE_500 = 0.0
    g10.SANDBOX_FAULT_RATE_500_AFTER = 1.0  # deleted, then answered 500
    response = superuser_client.post(
        changelist, {"action": "withdraw_assets", "_selected_action": [gone.pk]}, follow=True
    )
    assert "1 asset(s) withdrawn." in response.content.decode()
    assert not listed(gone)
    assert Asset.objects.get(pk=gone.pk).status == Asset.Status.WITHDRAWN
    event = AuditEvent.objects.get(action="asset.withdrawn", object_id=str(gone.pk))
    assert (event.detail["outcome"], event.detail["proven_by"]) == ("deleted", "listing")


def test_the_withdrawal_page_and_the_evidence_bundle_show_how_each_item_was_proven(
    g10, superuser_client
):
    group = verified_group()
    ambiguous, plain = active_asset(group, "a.png"), active_asset(group, "b.png")
    withdrawal = revoke(group)
    g10.SANDBOX_FAULT_RATE_500_AFTER = 1.0
    work_item(withdrawal.items.get(asset=ambiguous))
    g10.SANDBOX_FAULT_RATE_500_AFTER = 0.0
    work_item(withdrawal.items.get(asset=plain))
    work_item(withdrawal.items.get(asset__isnull=True))  # the group, last
    assert Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is not None

    page = superuser_client.get(reverse("admin:assets_withdrawal_change", args=[withdrawal.pk]))
    html = page.content.decode()
    assert "proven by" in html.lower()
    assert "ListAssets of its group no longer lists it" in html
    assert "DeleteAsset answered OK" in html
    assert "ListAssets shows nothing of its group after DeleteAssetGroup" in html
    assert len(TO_THE_SECOND.findall(html)) >= 3

    legal = UserFactory(username="legal-proof")
    legal.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_person", "export_evidence"])
    )
    superuser_client.force_login(legal)
    response = superuser_client.post(
        "/admin/consent/person/",
        {"action": "export_evidence_bundle", "_selected_action": [group.person_id]},
    )
    bundle = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    rows = {row["asset"]: row for row in json.loads(bundle.read("evidence.json"))["withdrawals"]}
    assert (rows[ambiguous.pk]["proven_by"], rows[plain.pk]["proven_by"]) == (
        "listing",
        "delete_answer",
    )
    assert rows[None]["proven_by"] == "group_listing"
    assert rows[ambiguous.pk]["proof"] == "ListAssets of its group no longer lists it"
    assert rows[ambiguous.pk]["upstream_confirmed_at"]
    summary = bundle.read("summary.html").decode()
    assert "ListAssets of its group no longer lists it" in summary
    assert TO_THE_SECOND.search(summary)


# --- Groups: DeleteAssetGroup, proven by ListAssets of the group -------------------------------


def test_a_group_is_confirmed_deleted_only_once_its_listing_shows_nothing_of_it(g10, queued):
    group = verified_group()
    asset = active_asset(group)
    withdrawal = revoke(group)
    work_item(withdrawal.items.get(asset=asset))
    # Made upstream with the studio's key outside the portal: still in the group.
    stray = SandboxAsset.objects.create(
        asset_id="asset-20261203000000-stray",
        group=SandboxGroup.objects.get(group_id=group.group_id),
        name="made-elsewhere",
        asset_type="Image",
        source_url="https://elsewhere.test/face.png",
        ready_at=timezone.now(),
    )
    g10.SANDBOX_FAULT_ACTIONS = ["DeleteAssetGroup"]
    g10.SANDBOX_FAULT_RATE_500 = 1.0  # answered 500, nothing deleted
    group_item = withdrawal.items.get(asset__isnull=True)

    item = work_item(group_item)

    assert (item.status, item.proven_by, item.last_error_code) == (
        Item.Status.PENDING,
        "",
        "StillListed",
    )
    assert "still lists 1 asset(s): asset-20261203000000-stray" in item.last_error
    assert ("assets.tasks.withdraw_item", (item.pk,)) in queued.calls  # tried again later
    assert SandboxGroup.objects.filter(group_id=group.group_id).exists()
    assert AssetGroup.objects.get(pk=group.pk).withdrawn_at is None
    assert Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is None

    g10.SANDBOX_FAULT_RATE_500 = 0.0
    lists_before = calls("ListAssets")
    item = work_item(item)

    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        Outcome.DELETED,
        Proof.GROUP_LISTING,
    )
    assert calls("ListAssets") == lists_before + 1  # the independent read
    assert not SandboxAsset.objects.filter(pk=stray.pk).exists()
    assert AssetGroup.objects.get(pk=group.pk).withdrawn_at is not None
    assert Withdrawal.objects.get(pk=withdrawal.pk).confirmed_at is not None
    event = AuditEvent.objects.get(action="asset_group.deleted_upstream")
    assert (event.detail["proven_by"], event.detail["listing"]) == ("group_listing", "no assets")


def test_a_group_delete_that_acted_but_answered_500_is_confirmed_by_the_next_attempt(g10):
    group = verified_group()
    withdrawal = revoke(group)
    g10.SANDBOX_FAULT_ACTIONS = ["DeleteAssetGroup"]
    g10.SANDBOX_FAULT_RATE_500_AFTER = 1.0  # deleted, then answered 500

    item = work_item(withdrawal.items.get(asset__isnull=True))

    # Gone, but an empty listing cannot tell a deleted group from an empty one: not yet proven.
    assert not SandboxGroup.objects.filter(group_id=group.group_id).exists()
    assert (item.status, item.proven_by, item.last_error_code) == (
        Item.Status.PENDING,
        "",
        "Unproven",
    )
    assert "answered InternalServiceError" in item.last_error

    g10.SANDBOX_FAULT_RATE_500_AFTER = 0.0
    item = work_item(item)  # DeleteAssetGroup now answers NotFound; the listing shows nothing

    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        Outcome.DELETED,  # the portal's own earlier call, not "already gone"
        Proof.GROUP_LISTING,
    )


def test_a_group_gone_before_the_first_delete_is_already_gone_proven_by_its_listing(g10):
    group = verified_group()
    quick_client().delete_asset_group(group.group_id)  # someone else deleted it
    withdrawal = revoke(group)

    item = work_item(withdrawal.items.get(asset__isnull=True))

    assert (item.status, item.outcome, item.proven_by) == (
        Item.Status.CONFIRMED,
        Outcome.ALREADY_GONE,
        Proof.GROUP_LISTING,
    )


def test_a_liveness_assets_status_comes_from_the_group_listing_never_getasset(g10):
    group = verified_group()
    asset = active_asset(group)
    gets_before = calls("GetAsset")

    asset_pipeline.asset_refresh(asset=asset, client=quick_client())
    assert Asset.objects.get(pk=asset.pk).status == Asset.Status.ACTIVE

    SandboxAsset.objects.filter(asset_id=asset.upstream_id).delete()  # gone upstream
    g10.ASSET_NOT_FOUND_GRACE_SECONDS = 0
    refreshed = asset_pipeline.asset_refresh(asset=asset, client=quick_client())

    assert refreshed.status == Asset.Status.FAILED
    assert calls("GetAsset") == gets_before  # listings only


def test_staffs_withdraw_does_not_take_another_keys_not_found_as_proof(g10):
    group = verified_group()
    asset = active_asset(group)
    AssetGroup.objects.filter(pk=group.pk).update(api_key_fingerprint="another-key-fp")
    SandboxAsset.objects.filter(asset_id=asset.upstream_id).delete()  # NotFound for this key
    asset = Asset.objects.select_related("group").get(pk=asset.pk)

    with pytest.raises(AssetNotFound):
        withdrawals.asset_withdraw(asset=asset, client=quick_client())

    assert Asset.objects.get(pk=asset.pk).status == Asset.Status.ACTIVE
