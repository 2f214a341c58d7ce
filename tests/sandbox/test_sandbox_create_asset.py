"""CreateAsset downloads its URL for real: files come from the live server's signed links."""

from __future__ import annotations

import datetime

import pytest
import time_machine

from assets.signing import signed_file_url
from sandbox.models import SandboxAsset
from sandbox.samples import make_audio, make_image, make_video
from sandbox.testing import call, complete_session
from tests.factories import AssetFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def sandbox_settings(settings, live_server):
    settings.PORTAL_PUBLIC_URL = live_server.url
    settings.SANDBOX_ENFORCE_RATE_LIMITS = False
    settings.SANDBOX_PROCESSING_SECONDS = 4
    settings.SANDBOX_VIDEO_PROCESSING_SECONDS = 9


def _url_of(content: bytes) -> str:
    """A signed link to ``content`` on the live server, as the portal hands the upstream."""
    return signed_file_url(AssetFactory(content=content).file, expires_in=300)


def _verified_group(client, identity: str = "ada") -> str:
    response = call(client, "CreateVisualValidateSession", {"CallbackURL": "https://portal.test/"})
    return complete_session(response.json()["BytedToken"], identity=identity)


def _create(client, group_id: str, content: bytes, *, asset_type="Image", name="portrait"):
    model = {"Image": "volc-asset", "Video": "volc-asset-video", "Audio": "volc-asset-audio"}
    body = {
        "model": model[asset_type],
        "GroupId": group_id,
        "Name": name,
        "AssetType": asset_type,
        "URL": _url_of(content),
    }
    return call(client, "CreateAsset", body)


def _status_after(client, asset_id: str, seconds: float) -> dict:
    created = SandboxAsset.objects.get(asset_id=asset_id).created_at
    with time_machine.travel(created + datetime.timedelta(seconds=seconds), tick=False):
        return call(client, "GetAsset", {"Id": asset_id}).json()


def test_matching_image_is_processing_then_active(client):
    group_id = _verified_group(client, "ada")

    response = _create(client, group_id, make_image(width=600, height=800, face="ada"))

    assert response.status_code == 200
    asset_id = response.json()["Id"]
    assert set(response.json()) == {"Id"}
    assert _status_after(client, asset_id, 3.9)["Status"] == "Processing"
    active = _status_after(client, asset_id, 4)
    assert active["Status"] == "Active"
    assert "Error" not in active
    asset = SandboxAsset.objects.get(asset_id=asset_id)
    assert asset.face_identity == "ada"
    assert asset.content_type == "image/jpeg"


def test_another_persons_face_fails_with_face_mismatch(client):
    group_id = _verified_group(client, "ada")
    asset_id = _create(client, group_id, make_image(width=600, height=800, face="grace")).json()[
        "Id"
    ]

    failed = _status_after(client, asset_id, 5)

    assert failed["Status"] == "Failed"
    assert failed["Error"] == {
        "Code": "FaceMismatch",
        "Message": "Face consistency verification failed.",
    }


def test_several_faces_fail(client):
    group_id = _verified_group(client, "ada")
    asset_id = _create(client, group_id, make_image(width=600, height=800, face="crowd")).json()[
        "Id"
    ]

    failed = _status_after(client, asset_id, 5)

    assert failed["Status"] == "Failed"
    assert failed["Error"]["Code"] == "MultipleFacesDetected"


def test_a_file_without_marker_counts_as_the_verified_person(client):
    group_id = _verified_group(client, "ada")
    asset_id = _create(client, group_id, make_image(width=600, height=800)).json()["Id"]
    assert _status_after(client, asset_id, 5)["Status"] == "Active"


def test_video_takes_the_video_processing_time(client):
    group_id = _verified_group(client, "ada")
    video = make_video(width=640, height=720, seconds=2.2, fps=24, face="ada")

    response = _create(client, group_id, video, asset_type="Video")

    assert response.status_code == 200
    asset_id = response.json()["Id"]
    assert _status_after(client, asset_id, 8)["Status"] == "Processing"
    assert _status_after(client, asset_id, 9)["Status"] == "Active"


def test_audio_is_not_face_checked(client):
    group_id = _verified_group(client, "ada")
    response = _create(client, group_id, make_audio(seconds=2.5), asset_type="Audio")
    assert _status_after(client, response.json()["Id"], 5)["Status"] == "Active"


def test_video_with_too_few_pixels_is_refused(client):
    group_id = _verified_group(client, "ada")
    video = make_video(width=480, height=600, seconds=2.2, fps=24, face="ada")

    response = _create(client, group_id, video, asset_type="Video")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InvalidParameter.PixelCountTooSmall"
    assert error["message"].startswith("upstream_error: [InvalidParameter.PixelCountTooSmall] ")
    assert not SandboxAsset.objects.exists()


def test_image_with_a_bad_aspect_ratio_is_refused(client):
    group_id = _verified_group(client, "ada")
    response = _create(client, group_id, make_image(width=1500, height=400, face="ada"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidParameter.AspectRatio"


def test_a_file_of_another_type_is_refused(client):
    group_id = _verified_group(client, "ada")
    response = _create(client, group_id, make_audio(seconds=2.5), asset_type="Image")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidParameter.AssetType"


def test_unreadable_bytes_are_refused(client):
    group_id = _verified_group(client, "ada")
    response = _create(client, group_id, b"not an image at all")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidParameter.FileFormat"


def test_unreachable_url_is_refused(client, live_server):
    group_id = _verified_group(client, "ada")
    for url in [f"{live_server.url}/files/forged/portrait.png", "http://127.0.0.1:9/x.jpg"]:
        body = {
            "model": "volc-asset",
            "GroupId": group_id,
            "Name": "portrait",
            "AssetType": "Image",
            "URL": url,
        }
        response = call(client, "CreateAsset", body)
        assert response.status_code == 400, url
        assert response.json()["error"]["message"].startswith(
            "upstream_error: [InvalidParameter.URL] "
        )


def test_duplicate_name_after_a_real_upload_answers_group_not_found(client):
    group_id = _verified_group(client, "ada")
    image = make_image(width=600, height=800, face="ada")
    assert _create(client, group_id, image, name="tcp-1").status_code == 200

    response = _create(client, group_id, image, name="tcp-1")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound.group_id"
    assert SandboxAsset.objects.count() == 1


def test_aigc_group_accepts_any_face(client):
    group_id = call(client, "CreateAssetGroup", {"model": "volc-asset", "Name": "stills"}).json()[
        "Id"
    ]
    response = _create(client, group_id, make_image(width=600, height=800, face="grace"))
    assert _status_after(client, response.json()["Id"], 5)["Status"] == "Active"
