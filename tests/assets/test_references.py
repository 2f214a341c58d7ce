"""The producers' references page: what it lists, its filters, permissions, copies and previews."""

from __future__ import annotations

import datetime
import io
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import ExifTags, Image

from assets.models import Asset, AssetGroup, ReferenceCopy
from assets.references import PAGE_SIZE, THUMBNAIL_SIZE
from assets.services import references as references_service
from audit.models import AuditEvent
from consent.models import ConsentRecord
from sandbox.samples import make_image, make_video
from tests.factories import (
    AssetGroupFactory,
    PersonFactory,
    ProducerNoticeFactory,
    ReferenceCopyFactory,
    UsableAssetFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

LIST_URL = "/references/"
COPY_URL = "/references/copy/"
PROJECT = "Spring campaign 2027"


def make_producer(username: str = "producer", **kwargs: Any):
    user = UserFactory(username=username, **kwargs)
    user.user_permissions.add(Permission.objects.get(codename="view_references"))
    return user


@pytest.fixture
def producer(db):
    return make_producer()


@pytest.fixture
def producer_client(client: Client, producer) -> Client:
    client.force_login(producer)
    return client


def listed(response) -> list[int]:
    return [row.asset.pk for row in response.context["rows"]]


def copy(client: Client, assets: list[Asset], *, kind: str = "reference", project: str = PROJECT):
    body = {"assets": [asset.pk for asset in assets], "project": project, "kind": kind}
    return client.post(COPY_URL, json.dumps(body), content_type="application/json")


def _set_status(record: ConsentRecord, **fields: Any) -> None:
    # An approved record refuses save(); tests move it like the services do, by an UPDATE.
    ConsentRecord.objects.filter(pk=record.pk).update(**fields)


# --- What the page lists -------------------------------------------------------------------


def _revoked_consent(asset: Asset) -> None:
    _set_status(asset.consent, status=ConsentRecord.Status.REVOKED, revoked_at=timezone.now())


def _processing(asset: Asset) -> None:
    Asset.objects.filter(pk=asset.pk).update(status=Asset.Status.PROCESSING)


def _withdrawn(asset: Asset) -> None:
    Asset.objects.filter(pk=asset.pk).update(
        status=Asset.Status.WITHDRAWN, withdrawn_at=timezone.now()
    )


def _group_withdrawn(asset: Asset) -> None:
    AssetGroup.objects.filter(pk=asset.group_id).update(status=AssetGroup.Status.WITHDRAWN)


def _days(n: int) -> datetime.date:
    return timezone.localdate() + datetime.timedelta(days=n)


# Each way an asset is not for producers. Those that happen to a listed asset (a revocation, a
# withdrawal) change it after the page was loaded; the others are made so (consent terms never
# change once submitted).
BECOMES_UNUSABLE: dict[str, Callable[[Asset], None]] = {
    "consent revoked": _revoked_consent,
    "asset still processing": _processing,
    "asset withdrawn": _withdrawn,
    "group withdrawn": _group_withdrawn,
}
MADE_UNUSABLE: dict[str, dict[str, Any]] = {
    # A status never goes back to review: the consent is made so.
    "consent pending review": {
        "consent__approved": False,
        "consent__status": ConsentRecord.Status.PENDING_REVIEW,
    },
    "consent ended yesterday": {"consent__starts_on": _days(-30), "consent__expires_on": _days(-1)},
    "consent starts tomorrow": {"consent__starts_on": _days(1)},
    "consent does not cover the kind": {"kind": Asset.Kind.AUDIO},  # audio is not covered
    "consent does not cover video": {"kind": Asset.Kind.VIDEO, "consent__covers_video": False},
}


def unusable_asset(why: str) -> Asset:
    if why in MADE_UNUSABLE:
        return UsableAssetFactory(**MADE_UNUSABLE[why])
    asset = UsableAssetFactory()
    BECOMES_UNUSABLE[why](asset)
    return asset


EXCLUSIONS = [*BECOMES_UNUSABLE, *MADE_UNUSABLE]


@pytest.mark.parametrize("why", EXCLUSIONS)
def test_page_lists_only_assets_producers_may_use(why, producer_client: Client):
    usable = UsableAssetFactory()
    unusable_asset(why)

    response = producer_client.get(LIST_URL)

    assert response.status_code == 200
    assert listed(response) == [usable.pk]


@pytest.mark.parametrize("why", EXCLUSIONS)
def test_copy_of_an_asset_producers_may_not_use_is_refused_with_409(why, producer_client: Client):
    asset = unusable_asset(why)

    response = copy(producer_client, [asset])

    assert response.status_code == 409
    assert response.json()["unusable"] == [asset.pk]
    assert "can no longer be used" in response.json()["error"]
    assert "text" not in response.json()
    assert not ReferenceCopy.objects.exists()
    assert not AuditEvent.objects.filter(action="reference.copied").exists()


@pytest.mark.parametrize("why", list(BECOMES_UNUSABLE))
def test_an_open_page_cannot_copy_an_asset_that_became_unusable(why, producer_client: Client):
    asset = UsableAssetFactory()
    assert listed(producer_client.get(LIST_URL)) == [asset.pk]  # the page was open
    BECOMES_UNUSABLE[why](asset)

    assert copy(producer_client, [asset]).status_code == 409
    assert listed(producer_client.get(LIST_URL)) == []
    assert not ReferenceCopy.objects.exists()


def test_copy_refusal_says_why_in_producers_words(producer_client: Client):
    asset = UsableAssetFactory(group__person__display_name="Ada")
    _revoked_consent(asset)

    error = copy(producer_client, [asset]).json()["error"]

    assert error == (
        f"Asset #{asset.pk} can no longer be used: its consent is revoked. Reload the page."
    )


@pytest.mark.parametrize("why", EXCLUSIONS)
def test_a_refused_copy_names_no_reference_nor_person_and_is_audited(
    why, producer, producer_client: Client
):
    asset = unusable_asset(why)
    person = asset.group.person

    response = copy(producer_client, [asset])

    assert response.status_code == 409
    body = response.content.decode()
    assert "asset://" not in body and (not asset.upstream_id or asset.upstream_id not in body)
    for name in (person.legal_name, person.display_name):
        assert not name or name not in body
    event = AuditEvent.objects.get(action="reference.refused")
    assert event.actor_id == producer.pk and event.person_id == person.pk
    assert event.detail["asset"] == asset.pk and event.detail["project"] == PROJECT


def test_an_asset_leaves_the_page_the_day_its_consent_ends(producer, client: Client):
    asset = UsableAssetFactory()
    ends = asset.consent.expires_on
    assert ends is not None

    def noon(day: datetime.date) -> datetime.datetime:
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time(12)))

    with time_machine.travel(noon(ends), tick=False):
        client.force_login(producer)  # a session lasts hours, not a year
        assert listed(client.get(LIST_URL)) == [asset.pk]
    with time_machine.travel(noon(ends + datetime.timedelta(days=1)), tick=False):
        client.force_login(producer)
        assert listed(client.get(LIST_URL)) == []
        assert copy(client, [asset]).status_code == 409


def test_page_shows_display_name_uses_territory_and_end_but_no_private_details(
    producer_client: Client,
):
    person = PersonFactory(
        legal_name="Adelaide Secretname",
        display_name="Ada",
        email="ada.private@talent.test",
        phone="+44 20 7946 0999",
        notes="Prefers morning shoots; lives at 5 Hidden Lane.",
    )
    asset = UsableAssetFactory(
        group=AssetGroupFactory(person=person), consent__territory="United Kingdom"
    )

    page = producer_client.get(LIST_URL).content.decode()

    assert "Ada" in page
    assert "Spring campaign 2027" in page  # the use: project, medium, channels
    assert "AI-generated video advertisement, 30 seconds" in page
    assert "YouTube, Instagram, in-store screens" in page
    assert "United Kingdom" in page
    assert f"{asset.consent.expires_on:%Y-%m-%d}" in page
    for private in (
        "Secretname",
        "ada.private@talent.test",
        "7946 0999",
        "Hidden Lane",
        asset.file.name,
        asset.sha256,
        "/admin/assets/asset/",
        "/files/",
        # The reference itself leaves only through the copy endpoint, which records it.
        asset.asset_uri,
    ):
        assert private not in page, private


# --- Filters and pagination ----------------------------------------------------------------


def test_filters_by_person_kind_and_project(producer_client: Client):
    ada = UsableAssetFactory()
    ada_video = UsableAssetFactory(group=ada.group, consent=ada.consent, kind=Asset.Kind.VIDEO)
    grace = UsableAssetFactory(consent__uses=["Autumn trailer", PROJECT])

    by_person = producer_client.get(LIST_URL, {"person": ada.group.person_id})
    by_kind = producer_client.get(LIST_URL, {"kind": "video"})
    by_project = producer_client.get(LIST_URL, {"project": "Autumn trailer"})
    everyone = producer_client.get(LIST_URL)

    assert sorted(listed(by_person)) == sorted([ada.pk, ada_video.pk])
    assert listed(by_kind) == [ada_video.pk]
    assert listed(by_project) == [grace.pk]
    assert sorted(listed(everyone)) == sorted([ada.pk, ada_video.pk, grace.pk])
    projects = [value for value, _ in everyone.context["form"].fields["project"].choices]
    assert projects == ["", "Autumn trailer", PROJECT]


def test_project_filter_states_the_project_for_each_row(producer_client: Client):
    asset = UsableAssetFactory()

    page = producer_client.get(LIST_URL, {"project": PROJECT}).content.decode()
    unfiltered = producer_client.get(LIST_URL).content.decode()

    assert f'<option value="{PROJECT}" selected>' in page
    assert "— choose —</option>" not in page.split("<tbody>")[1]
    # The consent has one project: it is the row's project without a filter too.
    assert f'<option value="{PROJECT}" selected>' in unfiltered.split("<tbody>")[1]
    assert asset.pk in listed(producer_client.get(LIST_URL, {"project": PROJECT}))


def test_a_consent_of_several_projects_asks_which_one(producer_client: Client):
    UsableAssetFactory(consent__uses=["Spring campaign 2027", "Summer campaign 2027"])

    body = producer_client.get(LIST_URL).content.decode().split("<tbody>")[1]

    assert "— choose —</option>" in body and " selected>" not in body


def test_each_row_shows_the_files_name_size_dimensions_and_upload_date(producer_client: Client):
    group = AssetGroupFactory()
    first = UsableAssetFactory(group=group, original_filename="ada-1.jpg", size_bytes=250_000)
    UsableAssetFactory(
        group=group,
        consent=first.consent,
        original_filename="ada-2.jpg",
        width=1080,
        height=1080,
        size_bytes=3_500_000,
    )

    body = producer_client.get(LIST_URL).content.decode().split("<tbody>")[1]

    today = timezone.localdate().isoformat()
    assert "ada-1.jpg" in body and "1200 \u00d7 1600 px \u00b7 244.1\u00a0KB" in body
    assert "ada-2.jpg" in body and "1080 \u00d7 1080 px \u00b7 3.3\u00a0MB" in body
    assert body.count(f"uploaded {today}") == 2


def test_a_filter_for_someone_not_listed_is_shown_as_an_error(producer_client: Client):
    UsableAssetFactory()
    hidden = PersonFactory()  # no usable asset: not a choice

    response = producer_client.get(LIST_URL, {"person": hidden.pk})

    assert response.status_code == 200
    assert "person" in response.context["form"].errors


def page_link(response, rel: str) -> dict[str, str] | None:
    """The query of the page's "Newer" (``prev``) or "Older" (``next``) link, or None."""
    html = response.content.decode()
    marker = f'" rel="{rel}">'
    if marker not in html:
        return None
    href = html.split(marker)[0].rsplit('href="?', 1)[1].replace("&amp;", "&")
    return dict(part.split("=", 1) for part in href.split("&"))


def test_pages_of_assets_keep_the_filters(producer_client: Client):
    consent = UsableAssetFactory().consent
    group = consent.person.asset_groups.get()
    for _ in range(PAGE_SIZE):
        UsableAssetFactory(group=group, consent=consent)

    first = producer_client.get(LIST_URL, {"kind": "image"})
    older = page_link(first, "next")
    second = producer_client.get(LIST_URL, older)

    assert len(listed(first)) == PAGE_SIZE
    assert older is not None and older["kind"] == "image"
    assert len(listed(second)) == 1


def test_a_person_is_searched_by_name_never_listed(producer_client: Client):
    ada = UsableAssetFactory(group=AssetGroupFactory(person=PersonFactory(display_name="Ada Q")))
    grace = UsableAssetFactory(group=AssetGroupFactory(person=PersonFactory(display_name="Grace")))

    page = producer_client.get(LIST_URL)
    filters = page.content.decode().split('class="ref-filters"')[1].split("</form>")[0]
    by_name = producer_client.get(LIST_URL, {"name": "ada q"})
    by_link = producer_client.get(LIST_URL, {"person": grace.group.person_id})

    # The filters name nobody (at 50,000 people the list of everyone was megabytes).
    assert "Ada Q" not in filters and "Grace" not in filters
    assert 'type="search"' in filters
    assert listed(by_name) == [ada.pk]
    assert listed(by_link) == [grace.pk]
    # Each row's name links to that person's assets.
    assert f'href="?person={ada.group.person_id}"' in page.content.decode()


def test_pages_link_back_and_forth_without_counting(producer_client: Client):
    consent = UsableAssetFactory().consent
    group = consent.person.asset_groups.get()
    for _ in range(PAGE_SIZE):
        UsableAssetFactory(group=group, consent=consent)

    first = producer_client.get(LIST_URL)
    second = producer_client.get(LIST_URL, page_link(first, "next"))
    back = producer_client.get(LIST_URL, page_link(second, "prev"))

    assert page_link(first, "prev") is None and page_link(second, "next") is None
    assert listed(back) == listed(first)
    assert len(listed(first)) == PAGE_SIZE and len(listed(second)) == 1


def test_walking_the_pages_shows_every_asset_once_in_order_even_when_created_together(
    producer_client: Client,
):
    consent = UsableAssetFactory().consent
    group = consent.person.asset_groups.get()
    for _ in range(2 * PAGE_SIZE + 5):
        UsableAssetFactory(group=group, consent=consent)
    # Ten created in the same instant: the page boundary falls among them.
    same = timezone.now() - datetime.timedelta(days=1)
    tied = Asset.objects.order_by("pk").values_list("pk", flat=True)[PAGE_SIZE - 3 : PAGE_SIZE + 7]
    Asset.objects.filter(pk__in=list(tied)).update(created_at=same)
    expected = list(Asset.objects.order_by("-created_at", "-pk").values_list("pk", flat=True))

    pages, response = [], producer_client.get(LIST_URL)
    while True:
        pages.append(listed(response))
        older = page_link(response, "next")
        if older is None:
            break
        response = producer_client.get(LIST_URL, older)
    backwards = []
    while (newer := page_link(response, "prev")) is not None:
        response = producer_client.get(LIST_URL, newer)
        backwards.append(listed(response))

    assert [pk for page in pages for pk in page] == expected
    assert backwards == pages[-2::-1]


def test_a_position_that_is_not_one_shows_the_first_page(producer_client: Client):
    asset = UsableAssetFactory()

    for value in ("x", "12-", "-3", "9" * 40 + "-1", "1733230000000000-1; DROP"):
        response = producer_client.get(LIST_URL, {"older": value})
        assert response.status_code == 200 and listed(response) == [asset.pk]


def test_page_runs_the_same_number_of_queries_for_1_and_20_assets(producer, producer_client):
    asset = UsableAssetFactory()
    ProducerNoticeFactory(user=producer, copies=[ReferenceCopyFactory(user=producer, asset=asset)])
    with CaptureQueriesContext(connection) as one:
        assert len(listed(producer_client.get(LIST_URL))) == 1

    for number in range(19):
        UsableAssetFactory(consent__uses=[PROJECT, f"Project {number}"])
    with CaptureQueriesContext(connection) as twenty:
        assert len(listed(producer_client.get(LIST_URL))) == 20

    assert len(twenty.captured_queries) == len(one.captured_queries)


# --- Who may see it ------------------------------------------------------------------------


@pytest.fixture
def endpoints(db) -> dict[str, tuple[str, str]]:
    asset = UsableAssetFactory()
    notice = ProducerNoticeFactory()
    return {
        "page": ("get", LIST_URL),
        "copy": ("post", COPY_URL),
        "thumbnail": ("get", reverse("references:thumbnail", args=[asset.pk])),
        "acknowledge": ("post", reverse("references:acknowledge", args=[notice.pk])),
    }


@pytest.mark.parametrize("endpoint", ["page", "copy", "thumbnail", "acknowledge"])
def test_anonymous_visitors_are_sent_to_the_admin_login(endpoint, client: Client, endpoints):
    method, url = endpoints[endpoint]

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith(f"/admin/login/?next={url}")


@pytest.mark.parametrize("endpoint", ["page", "copy", "thumbnail", "acknowledge"])
def test_staff_without_the_permission_are_refused(endpoint, staff_client: Client, endpoints):
    method, url = endpoints[endpoint]

    assert getattr(staff_client, method)(url).status_code == 403


def test_a_non_staff_account_with_the_permission_is_sent_to_log_in(client: Client):
    client.force_login(make_producer(is_staff=False))

    assert client.get(LIST_URL).status_code == 302


def test_producers_need_no_permission_on_people(producer_client: Client):
    assert producer_client.get(LIST_URL).status_code == 200
    assert producer_client.get("/admin/consent/person/").status_code == 403


# --- Copies: the ledger row and the audit event come first ---------------------------------


def test_copying_a_reference_writes_the_ledger_row_and_audit_event_then_answers_it(
    producer, producer_client: Client
):
    asset = UsableAssetFactory()

    response = copy(producer_client, [asset])

    assert response.status_code == 200
    assert response.json() == {
        "text": asset.asset_uri,
        "message": f"Copied the asset:// reference for {PROJECT}; the copy is recorded.",
    }
    assert response["Cache-Control"] == "private, no-store"
    row = ReferenceCopy.objects.get()
    assert (row.user, row.asset, row.reference, row.project, row.kind) == (
        producer,
        asset,
        asset.asset_uri,
        PROJECT,
        "reference",
    )
    assert row.request_id == response["X-Request-ID"]
    event = AuditEvent.objects.get(action="reference.copied")
    assert (event.actor_id, event.object_id, event.person_id) == (
        producer.pk,
        str(row.pk),
        asset.group.person_id,
    )
    assert event.detail == {
        "asset": asset.pk,
        "reference": asset.asset_uri,
        "project": PROJECT,
        "copied_as": "reference",
    }
    assert event.request_id == row.request_id


@pytest.mark.parametrize(
    ("kind", "item_type", "role"),
    [
        ("image", "image_url", "reference_image"),
        ("video", "video_url", "reference_video"),
        ("audio", "audio_url", "reference_audio"),
    ],
)
def test_content_item_is_the_seedance_item_of_the_assets_kind(
    kind, item_type, role, producer_client: Client
):
    asset = UsableAssetFactory(kind=kind, consent__covers_audio=True)

    response = copy(producer_client, [asset], kind="content_item")

    assert response.status_code == 200
    assert json.loads(response.json()["text"]) == {
        "type": item_type,
        item_type: {"url": asset.asset_uri},
        "role": role,
    }
    assert ReferenceCopy.objects.get().kind == "content_item"


def test_content_array_puts_images_videos_then_audio_in_selection_order(
    producer_client: Client,
):
    consent = UsableAssetFactory(consent__covers_audio=True).consent
    group = consent.person.asset_groups.get()

    def make(kind: str) -> Asset:
        return UsableAssetFactory(group=group, consent=consent, kind=kind)

    audio, image_2, video, image_1 = make("audio"), make("image"), make("video"), make("image")

    response = copy(producer_client, [audio, image_1, video, image_2], kind="content_array")

    assert response.status_code == 200
    urls = [
        (item["type"], item[item["type"]]["url"]) for item in json.loads(response.json()["text"])
    ]
    assert urls == [
        ("image_url", image_1.asset_uri),
        ("image_url", image_2.asset_uri),
        ("video_url", video.asset_uri),
        ("audio_url", audio.asset_uri),
    ]
    rows = ReferenceCopy.objects.all()
    assert sorted(row.asset_id for row in rows) == sorted(
        a.pk for a in (audio, image_1, video, image_2)
    )
    assert {row.kind for row in rows} == {"content_array"}
    assert len({row.request_id for row in rows}) == 1
    assert AuditEvent.objects.filter(action="reference.copied").count() == 4


@pytest.mark.parametrize(
    ("counts", "message"),
    [
        ({"image": 10}, "At most 9 reference images go in one Seedance 2.0 request; 10"),
        ({"image": 1, "video": 4}, "At most 3 reference videos"),
        ({"image": 1, "audio": 4}, "At most 3 reference audio clips"),
        ({"audio": 2}, "Audio cannot be the only reference"),
    ],
)
def test_content_array_beyond_the_documented_counts_is_refused(
    counts, message, producer_client: Client
):
    consent = UsableAssetFactory(consent__covers_audio=True).consent
    group = consent.person.asset_groups.get()
    Asset.objects.all().delete()
    assets = [
        UsableAssetFactory(group=group, consent=consent, kind=kind)
        for kind, count in counts.items()
        for _ in range(count)
    ]

    response = copy(producer_client, assets, kind="content_array")

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert not ReferenceCopy.objects.exists()


def test_content_array_at_the_documented_counts_is_copied(producer_client: Client):
    consent = UsableAssetFactory(consent__covers_audio=True).consent
    group = consent.person.asset_groups.get()
    Asset.objects.all().delete()
    assets = [
        UsableAssetFactory(group=group, consent=consent, kind=kind)
        for kind, count in {"image": 9, "video": 3, "audio": 3}.items()
        for _ in range(count)
    ]

    response = copy(producer_client, assets, kind="content_array")

    assert response.status_code == 200
    assert len(json.loads(response.json()["text"])) == 15
    assert ReferenceCopy.objects.count() == 15


@pytest.mark.parametrize(
    ("project", "message"),
    [
        ("", "State the project you are copying for."),
        ("Autumn trailer", "“Autumn trailer” is not a use the consent of"),
    ],
)
def test_copy_needs_a_project_the_consent_covers(project, message, producer_client: Client):
    asset = UsableAssetFactory()

    response = copy(producer_client, [asset], project=project)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert "it covers: Spring campaign 2027." in response.json()["error"] or not project
    assert not ReferenceCopy.objects.exists()


def test_an_array_is_refused_when_one_asset_is_no_longer_usable(producer_client: Client):
    kept, revoked = UsableAssetFactory(), UsableAssetFactory()
    _revoked_consent(revoked)

    response = copy(producer_client, [kept, revoked], kind="content_array")

    assert response.status_code == 409
    assert response.json()["unusable"] == [revoked.pk]
    assert not ReferenceCopy.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"assets": [1, 2], "project": PROJECT, "kind": "reference"}),
        json.dumps({"assets": ["x"], "project": PROJECT, "kind": "reference"}),
        json.dumps({"assets": [1], "project": PROJECT, "kind": "screenshot"}),
        json.dumps({"assets": [], "project": PROJECT, "kind": "content_array"}),
    ],
)
def test_copy_requests_that_make_no_sense_are_refused(body, producer_client: Client):
    UsableAssetFactory()
    UsableAssetFactory()

    response = producer_client.post(COPY_URL, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]
    assert not ReferenceCopy.objects.exists()


def test_copy_endpoint_takes_posts_only(producer_client: Client):
    assert producer_client.get(COPY_URL).status_code == 405


def test_copy_endpoint_needs_the_csrf_token(producer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(producer)

    assert copy(client, [UsableAssetFactory()]).status_code == 403
    assert not ReferenceCopy.objects.exists()


# --- Previews: a small JPEG made by Pillow, never the original -----------------------------


def _asset_with_file(content: bytes, **kwargs: Any) -> Asset:
    return UsableAssetFactory(file=ContentFile(content, name="upload"), **kwargs)


def _located_jpeg() -> bytes:
    """A 3000x2000 JPEG with GPS coordinates in its EXIF."""
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] = (51.0, 30.0, 0.0)
    exif[ExifTags.Base.Model] = "Studio camera"
    buffer = io.BytesIO()
    Image.new("RGB", (3000, 2000), "tan").save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(_located_jpeg(), id="jpeg with gps"),
        pytest.param(make_image(width=1200, height=1600, fmt="PNG"), id="png"),
        pytest.param(make_image(width=800, height=800, fmt="WEBP"), id="webp"),
    ],
)
def test_image_preview_is_a_small_new_jpeg_without_metadata(content, producer_client: Client):
    content_type = Image.open(io.BytesIO(content)).get_format_mimetype()
    asset = _asset_with_file(content, content_type=content_type)

    response = producer_client.get(reverse("references:thumbnail", args=[asset.pk]))

    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["Cache-Control"] == "private, no-cache"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content != content
    assert content not in response.content
    preview = Image.open(io.BytesIO(response.content))
    assert preview.format == "JPEG"
    assert max(preview.size) == THUMBNAIL_SIZE
    assert not preview.getexif()
    assert b"Studio camera" not in response.content


def test_video_preview_is_its_first_frame_as_a_jpeg(producer_client: Client):
    content = make_video(seconds=2.0)
    asset = _asset_with_file(content, kind=Asset.Kind.VIDEO, content_type="video/mp4")

    response = producer_client.get(reverse("references:thumbnail", args=[asset.pk]))

    assert response.status_code == 200
    preview = Image.open(io.BytesIO(response.content))
    assert preview.format == "JPEG"
    assert max(preview.size) <= THUMBNAIL_SIZE


def test_audio_and_unreadable_files_show_the_kinds_icon(producer_client: Client):
    audio = UsableAssetFactory(kind=Asset.Kind.AUDIO, consent__covers_audio=True)
    broken = _asset_with_file(b"\xff\xd8\xff not really a jpeg", content_type="image/jpeg")

    for asset, icon in ((audio, "audio.svg"), (broken, "image.svg")):
        response = producer_client.get(reverse("references:thumbnail", args=[asset.pk]))
        assert response.status_code == 302
        assert response["Location"].endswith(f"assets/icons/{icon}")


def test_preview_of_an_asset_no_longer_usable_is_not_found(producer_client: Client):
    asset = _asset_with_file(make_image(fmt="PNG"), content_type="image/png")
    _revoked_consent(asset)

    assert producer_client.get(reverse("references:thumbnail", args=[asset.pk])).status_code == 404


def test_preview_is_revalidated_by_etag(producer_client: Client):
    asset = _asset_with_file(make_image(fmt="PNG"), content_type="image/png")
    url = reverse("references:thumbnail", args=[asset.pk])
    etag = producer_client.get(url)["ETag"]

    again = producer_client.get(url, headers={"If-None-Match": etag})

    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.django_db(transaction=True)
def test_a_copy_waits_for_a_revocation_in_progress_and_is_then_refused(producer):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite serialises every writer)")
    asset = UsableAssetFactory()
    outcome: list[str] = []

    def copy_now() -> None:
        try:
            references_service.reference_copy_create(
                user=producer, asset_ids=[asset.pk], project=PROJECT, kind="reference"
            )
            outcome.append("copied")
        except references_service.ReferenceNotUsable:
            outcome.append("refused")
        finally:
            connections.close_all()

    with transaction.atomic():
        _revoked_consent(asset)  # holds the consent row until this transaction commits
        thread = threading.Thread(target=copy_now)
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive()  # waiting for the revocation
    thread.join(timeout=10)

    assert outcome == ["refused"]
    assert not ReferenceCopy.objects.exists()
