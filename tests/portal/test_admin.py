"""Admin smoke tests, constant-query changelists and the private file view."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from assets.models import Asset, Withdrawal
from consent.models import Person
from consent.services import consent_revoke
from sandbox.samples import make_image, make_video
from tests.factories import (
    AssetFactory,
    AssetGroupFactory,
    ConsentRecordFactory,
    OutboundEmailFactory,
    PersonFactory,
    UpstreamSessionFactory,
    UsableAssetFactory,
    UserFactory,
    VerificationSessionFactory,
)
from verification.models import VerificationSession

pytestmark = pytest.mark.django_db

MODELS = ["consent.person", "consent.consentrecord", "verification.verificationsession"]
MODELS += ["assets.assetgroup", "assets.asset"]
MODELS += ["verification.upstreamsession", "mail.outboundemail", "assets.withdrawal"]
# Invitations are made by "Invite to verify" on a person; upstream sessions and emails are logs.
WITHOUT_ADD_PAGE = {"verification.verificationsession", "verification.upstreamsession"}
# Invitations come from "Invite to verify", groups from completed verifications only,
# withdrawals from a consent's end.
WITHOUT_ADD_PAGE |= {"mail.outboundemail", "assets.assetgroup", "assets.withdrawal"}


def _admin_url(model: str, view: str, *args: object) -> str:
    app_label, model_name = model.split(".")
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


def _invitation_with_history() -> VerificationSession:
    """An invitation with an email and an upstream session that called back."""
    invitation = VerificationSessionFactory()
    OutboundEmailFactory(about=invitation)
    UpstreamSessionFactory(
        invitation=invitation,
        callback_params={"resultCode": "10000"},
        callback_received_at=timezone.now(),
    )
    return invitation


def _withdrawal() -> Withdrawal:
    """The withdrawal of a revoked consent with one active asset (and its group)."""
    asset = UsableAssetFactory()
    consent_revoke(record=asset.consent, actor=None, channel="email", reason="Changed their mind.")
    return Withdrawal.objects.get(consent=asset.consent)


def _one_row(model: str) -> int:
    """Makes one row of ``model``, with what its admin pages show filled in, and returns its pk."""
    makers: dict[str, Callable[[], object]] = {
        "consent.person": lambda: _invitation_with_history().person,
        "consent.consentrecord": lambda: ConsentRecordFactory(with_document=True),
        "verification.verificationsession": _invitation_with_history,
        "assets.assetgroup": lambda: AssetFactory(active=True).group,
        "assets.asset": lambda: AssetFactory(active=True),
        "verification.upstreamsession": lambda: UpstreamSessionFactory(
            callback_params={"resultCode": "10001"}, callback_received_at=timezone.now()
        ),
        "mail.outboundemail": OutboundEmailFactory,
        "assets.withdrawal": _withdrawal,
    }
    row = makers[model]()
    if model == "consent.person":
        AssetFactory(active=True, group=AssetGroupFactory(person=row))
    return row.pk  # type: ignore[attr-defined]


@pytest.mark.parametrize("model", MODELS)
def test_superuser_sees_changelist_add_and_change_pages(model, superuser_client: Client):
    pk = _one_row(model)
    urls = [
        _admin_url(model, "changelist"),
        _admin_url(model, "changelist") + "?q=a",
        _admin_url(model, "change", pk),
    ]

    for url in urls:
        assert superuser_client.get(url).status_code == 200, url
    add_page = superuser_client.get(_admin_url(model, "add")).status_code
    assert add_page == (403 if model in WITHOUT_ADD_PAGE else 200)


def test_asset_groups_are_never_typed_in_by_hand(superuser_client: Client):
    response = superuser_client.post(
        _admin_url("assets.assetgroup", "add"),
        {"group_id": "group-20261124120000-typed", "group_type": "LivenessFace", "person": 1},
    )

    assert response.status_code == 403
    changelist = superuser_client.get(_admin_url("assets.assetgroup", "changelist"))
    assert _admin_url("assets.assetgroup", "add") not in changelist.content.decode()


@pytest.mark.parametrize("model", MODELS)
def test_staff_without_permissions_is_refused(model, staff_client: Client):
    pk = _one_row(model)

    for url in (
        _admin_url(model, "changelist"),
        _admin_url(model, "add"),
        _admin_url(model, "change", pk),
    ):
        assert staff_client.get(url).status_code == 403, url


@pytest.mark.parametrize("model", MODELS)
def test_changelist_runs_the_same_number_of_queries_for_1_and_20_rows(
    model, superuser_client: Client, django_assert_max_num_queries
):
    url = _admin_url(model, "changelist")
    _one_row(model)
    with CaptureQueriesContext(connection) as one_row:
        assert superuser_client.get(url).status_code == 200

    for _ in range(19):
        _one_row(model)
    with django_assert_max_num_queries(len(one_row.captured_queries)):
        response = superuser_client.get(url)
    assert response.context["cl"].result_count == 20


def test_person_changelist_counts_consents_and_active_assets(superuser_client: Client):
    person = PersonFactory(legal_name="Ada Example")
    ConsentRecordFactory(person=person)
    ConsentRecordFactory(person=person)
    ConsentRecordFactory(person=person, approved=True)
    group = AssetGroupFactory(person=person)
    AssetFactory(group=group, active=True)
    AssetFactory(group=AssetGroupFactory(person=person), active=True)
    AssetFactory(group=group)  # still queued: not counted
    PersonFactory(legal_name="Zoe Newcomer")

    response = superuser_client.get(_admin_url("consent.person", "changelist"))

    row, newcomer = response.context["cl"].result_list
    assert (row.consent_count, row.active_asset_count) == (3, 2)
    assert (newcomer.consent_count, newcomer.active_asset_count) == (0, 0)
    # The consent in force today, not merely the latest made (two drafts are newer here).
    assert (row.in_force, newcomer.in_force) == (True, False)
    assert b'alt="True"' in response.content and b'alt="False"' in response.content


def test_adding_a_person_records_who_added_them(superuser_client: Client, superuser):
    response = superuser_client.post(
        _admin_url("consent.person", "add"),
        {"legal_name": "Grace Example", "display_name": "", "preferred_language": "en"},
    )

    assert response.status_code == 302
    assert Person.objects.get().created_by == superuser


def test_person_page_lists_consents_sessions_groups_and_assets(superuser_client: Client):
    session = VerificationSessionFactory()
    asset = UsableAssetFactory(group=AssetGroupFactory(person=session.person))

    response = superuser_client.get(_admin_url("consent.person", "change", session.person.pk))

    page = response.content.decode()
    assert session.consent.consent_text_version in page
    assert "Invitation" in page
    assert asset.group.group_id in page
    assert f'data-copy="{asset.asset_uri}"' in page
    assert _admin_url("assets.asset", "file", asset.pk) in page


def test_asset_changelist_shows_sizes_for_people(superuser_client: Client):
    AssetFactory(content=b"x" * 34_956)

    page = superuser_client.get(_admin_url("assets.asset", "changelist")).content.decode()

    assert "34.1\xa0KB" in page


def test_asset_reference_and_copy_button_are_shown_for_active_assets_only(
    superuser_client: Client,
):
    active = UsableAssetFactory()
    queued = AssetFactory(upstream_id="asset-20261124120000-queued")
    revoked = UsableAssetFactory()
    consent_revoke(record=revoked.consent, actor=None, channel="email", reason="None given.")

    page = superuser_client.get(_admin_url("assets.asset", "changelist")).content.decode()

    assert page.count('class="button copy-button"') == 1
    assert f'data-copy="asset://{active.upstream_id}"' in page
    assert queued.upstream_id not in page
    # Its consent was revoked: still active upstream until its withdrawal, never to be copied.
    assert f"<s>asset://{revoked.upstream_id}</s>" in page
    assert "portal/admin.js" in page


def test_adding_an_asset_records_its_file_facts_and_uploader(superuser_client: Client, superuser):
    group = AssetGroupFactory(verified=True)
    content = make_image(width=900, height=1200, fmt="JPEG")
    upload = SimpleUploadedFile("face.jpg", content, content_type="image/jpeg")

    response = superuser_client.post(
        _admin_url("assets.asset", "add"), {"group": group.pk, "file": upload}
    )

    assert response.status_code == 302
    asset = Asset.objects.get()
    assert (asset.kind, asset.original_filename, asset.size_bytes, asset.content_type) == (
        "image",
        "face.jpg",
        len(content),
        "image/jpeg",
    )
    assert (asset.width, asset.height) == (900, 1200)
    assert asset.sha256 == hashlib.sha256(content).hexdigest()
    assert asset.uploaded_by == superuser
    assert asset.status == Asset.Status.QUEUED
    assert asset.consent == group.upstream_session.invitation.consent  # the one in force, chosen
    assert response["Location"] == _admin_url("assets.asset", "change", asset.pk)


def test_adding_a_video_measures_its_duration_and_frame_rate(superuser_client: Client):
    group = AssetGroupFactory(verified=True)
    content = make_video(width=480, height=854, seconds=2.5, fps=24)
    upload = SimpleUploadedFile("take.mp4", content, content_type="video/mp4")

    superuser_client.post(_admin_url("assets.asset", "add"), {"group": group.pk, "file": upload})

    asset = Asset.objects.get()
    assert (asset.kind, asset.width, asset.height, asset.fps) == ("video", 480, 854, 24)
    assert asset.duration_seconds == pytest.approx(2.5, abs=0.05)


def test_a_file_outside_the_upstream_limits_is_refused_with_every_reason(
    superuser_client: Client,
):
    group = AssetGroupFactory(verified=True)  # the gate passes: the limits are what refuse it
    upload = SimpleUploadedFile(
        "tiny.png", make_image(width=200, height=600, fmt="PNG"), content_type="image/png"
    )

    response = superuser_client.post(
        _admin_url("assets.asset", "add"), {"group": group.pk, "file": upload}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "200 × 600 px; each side must be between 300 and 6000 px" in page  # noqa: RUF001
    assert "a width/height ratio of 0.333; it must be between 0.4 and 2.5." in page
    assert not Asset.objects.exists()


def test_adding_the_same_file_twice_to_a_group_is_a_form_error(superuser_client: Client):
    content = make_image(width=900, height=1200, fmt="PNG")
    existing = AssetFactory(content=content, group=AssetGroupFactory(verified=True))
    upload = SimpleUploadedFile("again.png", content, content_type="image/png")

    response = superuser_client.post(
        _admin_url("assets.asset", "add"), {"group": existing.group.pk, "file": upload}
    )

    assert response.status_code == 200
    assert "This file is already registered in this group." in response.content.decode()
    assert Asset.objects.count() == 1


def test_a_signed_consent_document_is_shown_as_a_link_not_an_upload_field(
    superuser_client: Client,
):
    record = ConsentRecordFactory(with_document=True)

    response = superuser_client.get(_admin_url("consent.consentrecord", "change", record.pk))

    assert _admin_url("consent.consentrecord", "file", record.pk) in response.content.decode()
    assert 'name="signed_document"' not in response.content.decode()


# --- The private file view -------------------------------------------------------------------


@pytest.fixture
def asset_file_url() -> str:
    asset = AssetFactory(content=b"portrait bytes")
    return _admin_url("assets.asset", "file", asset.pk)


def test_private_file_view_streams_the_file_to_staff_who_may_open_asset_files(
    client: Client, asset_file_url: str
):
    onboarding = UserFactory(username="onboarding")
    onboarding.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_asset", "view_asset_file"])
    )
    client.force_login(onboarding)

    response = client.get(asset_file_url)

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"portrait bytes"
    assert response["Cache-Control"] == "private, no-store"
    assert response["Content-Type"] == "image/png"
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    assert response["X-Content-Type-Options"] == "nosniff"
    # Stored under a random name; downloaded under the name it was uploaded with.
    assert response["Content-Disposition"] == 'attachment; filename="portrait.png"'


def test_private_file_view_refuses_staff_without_view_permission(
    staff_client: Client, asset_file_url: str
):
    assert staff_client.get(asset_file_url).status_code == 403


def test_viewing_an_asset_is_not_enough_to_open_its_file(client: Client, asset_file_url: str):
    producer = UserFactory(username="producer")
    producer.user_permissions.add(Permission.objects.get(codename="view_asset"))
    client.force_login(producer)

    assert client.get(asset_file_url).status_code == 403


def test_private_file_view_sends_anonymous_visitors_to_the_login_page(
    client: Client, asset_file_url: str
):
    response = client.get(asset_file_url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_private_file_view_serves_consent_documents(superuser_client: Client):
    record = ConsentRecordFactory(with_document=True)

    response = superuser_client.get(_admin_url("consent.consentrecord", "file", record.pk))

    assert b"".join(response.streaming_content) == b"%PDF-1.4 signed consent"
    assert response["Content-Type"] == "application/pdf"


def test_private_file_view_answers_404_for_a_row_without_a_file(superuser_client: Client):
    record = ConsentRecordFactory()

    response = superuser_client.get(_admin_url("consent.consentrecord", "file", record.pk))

    assert response.status_code == 404


@pytest.mark.parametrize("model", MODELS[1:])
def test_evidence_and_upstream_rows_cannot_be_deleted_from_the_admin(
    model, superuser_client: Client
):
    pk = _one_row(model)

    assert superuser_client.get(_admin_url(model, "delete", pk)).status_code == 403


def test_asset_group_page_lists_its_assets_read_only_with_references(superuser_client: Client):
    asset = UsableAssetFactory()

    response = superuser_client.get(_admin_url("assets.assetgroup", "change", asset.group.pk))

    page = response.content.decode()
    assert f'data-copy="{asset.asset_uri}"' in page
    assert _admin_url("assets.asset", "file", asset.pk) in page
    assert "assets-TOTAL_FORMS" in page
    assert 'name="assets-0-kind"' not in page  # shown, not editable
