"""Uploads and the pipeline's actions in the admin: the person page's multiple upload, the add
form, Retry / Withdraw / Refresh, and each asset's state in plain words."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset
from sandbox.demo import demo_group_create
from sandbox.samples import make_audio, make_image
from tests.factories import (
    AssetFactory,
    AssetGroupFactory,
    ConsentRecordFactory,
    PersonFactory,
    UsableAssetFactory,
    UserFactory,
)
from tests.upstream_helpers import SANDBOX_KEY

pytestmark = pytest.mark.django_db


def upload_url(person) -> str:
    return reverse("admin:consent_person_upload_assets", args=[person.pk])


def image(name: str, **kwargs) -> SimpleUploadedFile:
    kwargs = {"width": 400, "height": 600, "fmt": "PNG", "label": name, **kwargs}
    return SimpleUploadedFile(name, make_image(**kwargs))


def changelist_action(client: Client, action: str, *assets: Asset):
    return client.post(
        reverse("admin:assets_asset_changelist"),
        {"action": action, "_selected_action": [asset.pk for asset in assets]},
        follow=True,
    )


def test_a_persons_page_links_to_the_upload_for_staff_who_may_add_assets(
    superuser_client: Client, client: Client
):
    # Uploading is offered once the person is verified (before, it could not work).
    unverified = PersonFactory()
    unverified_page = reverse("admin:consent_person_change", args=[unverified.pk])
    assert upload_url(unverified) not in superuser_client.get(unverified_page).content.decode()
    person = UsableAssetFactory().group.person
    change = reverse("admin:consent_person_change", args=[person.pk])

    assert upload_url(person) in superuser_client.get(change).content.decode()

    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_person"))
    client.force_login(viewer)
    assert upload_url(person) not in client.get(change).content.decode()
    assert client.get(upload_url(person)).status_code == 403


def test_several_files_at_once_each_get_a_verdict_the_good_ones_queued(superuser_client: Client):
    group = AssetGroupFactory(verified=True)  # its consent covers images and video, not audio
    files = [
        image("front.png"),
        image("side.jpg", fmt="JPEG"),
        image("tiny.png", width=200),
        SimpleUploadedFile("notes.txt", b"call the agent on Monday"),
        SimpleUploadedFile("voice.wav", make_audio(seconds=2.5)),
    ]

    response = superuser_client.post(upload_url(group.person), {"uploads": files, "consent": ""})

    assert response.status_code == 200
    page = response.content.decode()
    queued = Asset.objects.order_by("pk")
    assert [asset.original_filename for asset in queued] == ["front.png", "side.jpg"]
    assert {asset.status for asset in queued} == {Asset.Status.QUEUED}
    for asset in queued:
        assert reverse("admin:assets_asset_change", args=[asset.pk]) in page
    assert page.count('<tr class="refused">') == 3
    assert "each side must be between 300 and 6000 px" in page
    assert "a width/height ratio of 0.333" in page  # every reason, not only the first
    assert "notes.txt" in page
    assert "has no approved consent in force today that covers audio" in page
    assert "2 file(s) queued for upload, 3 refused." in page


def test_the_upload_page_of_a_person_never_verified_says_why_up_front(superuser_client: Client):
    person = PersonFactory()
    AssetGroupFactory(person=person)  # typed in by hand, before this was refused

    page = superuser_client.get(upload_url(person)).content.decode()

    assert "has no verified real-person group" in page


def test_the_add_form_refuses_a_group_that_no_verification_made(superuser_client: Client):
    group = AssetGroupFactory()

    response = superuser_client.post(
        reverse("admin:assets_asset_add"), {"group": group.pk, "file": image("face.png")}
    )

    assert response.status_code == 200
    assert "was not made by a completed verification" in response.content.decode()
    assert not Asset.objects.exists()


def test_the_changelist_says_each_assets_state_in_plain_words(superuser_client: Client):
    AssetFactory(
        error_code="RequestLimitExceeded",
        error_explanation="The upstream's rate limit for this call was reached.",
        next_attempt_at=timezone.now(),
    )
    AssetFactory(
        status=Asset.Status.FAILED,
        error_code="FaceMismatch",
        error_message="Face consistency verification failed.",
        error_explanation="Upload a clearer, front-facing asset of the same person.",
    )
    AssetFactory(status=Asset.Status.UPLOADING, attempts=2)

    page = superuser_client.get(reverse("admin:assets_asset_changelist")).content.decode()

    assert "Queued: the last attempt failed (RequestLimitExceeded: The upstream&#x27;s" in page
    assert "Trying again at" in page
    assert (
        "Failed: FaceMismatch (Face consistency verification failed.). What to do: Upload a "
        "clearer, front-facing asset of the same person." in page
    )
    assert "Uploading: the upstream is downloading the file (attempt 2)." in page


def test_the_retry_action_queues_a_failed_asset_again(superuser_client: Client):
    failed = AssetFactory(status=Asset.Status.FAILED, error_code="InvalidParameter.URL")

    response = changelist_action(superuser_client, "retry_assets", failed)

    failed.refresh_from_db()
    assert (failed.status, failed.error_code) == (Asset.Status.QUEUED, "")
    assert "1 asset(s) queued for upload." in response.content.decode()


def test_the_withdraw_action_withdraws_and_explains_what_it_cannot(superuser_client: Client):
    queued = AssetFactory()
    uploading = AssetFactory(status=Asset.Status.UPLOADING)

    response = changelist_action(superuser_client, "withdraw_assets", queued, uploading)

    queued.refresh_from_db()
    uploading.refresh_from_db()
    assert (queued.status, uploading.status) == (Asset.Status.WITHDRAWN, Asset.Status.UPLOADING)
    page = response.content.decode()
    assert "1 asset(s) withdrawn." in page
    assert "is being uploaded right now: withdraw it again once the upload has finished." in page


@pytest.mark.django_db(transaction=True)
def test_the_refresh_action_records_the_upstreams_answer(upstream, superuser_client: Client):
    group = AssetGroupFactory(
        verified=True,
        group_id=demo_group_create(api_key=SANDBOX_KEY, identity="ada").group_id,
    )
    missing = AssetFactory(
        group=group,
        status=Asset.Status.PROCESSING,
        upstream_id="asset-20261124120000-nope0",
        submitted_at=timezone.now() - timezone.timedelta(hours=1),
    )

    response = changelist_action(superuser_client, "refresh_assets", missing)

    missing.refresh_from_db()
    assert (missing.status, missing.error_code) == (Asset.Status.FAILED, "NotFound.asset_id")
    assert "1 asset(s) refreshed." in response.content.decode()


def test_actions_need_the_change_permission(client: Client):
    viewer = UserFactory(username="asset-viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_asset"))
    client.force_login(viewer)
    failed = AssetFactory(status=Asset.Status.FAILED)

    page = client.get(reverse("admin:assets_asset_changelist")).content.decode()
    changelist_action(client, "retry_assets", failed)

    assert "retry_assets" not in page
    failed.refresh_from_db()
    assert failed.status == Asset.Status.FAILED


def test_the_upload_offers_the_persons_consents_in_force_and_records_the_one_chosen(
    superuser_client: Client,
):
    group = AssetGroupFactory(verified=True)
    chosen = ConsentRecordFactory(person=group.person, approved=True, covers_video=False)
    draft = ConsentRecordFactory(person=group.person)
    elsewhere = ConsentRecordFactory(approved=True)

    page = superuser_client.get(upload_url(group.person)).content.decode()
    response = superuser_client.post(
        upload_url(group.person), {"uploads": [image("front.png")], "consent": chosen.pk}
    )

    assert f'value="{chosen.pk}"' in page
    assert f'value="{draft.pk}"' not in page and f'value="{elsewhere.pk}"' not in page
    assert response.status_code == 200
    assert Asset.objects.get().consent == chosen
