import pytest
import time_machine
from django.core.files.base import ContentFile
from django.test import Client

from assets.signing import signed_file_url
from tests.factories import AssetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def asset(settings):
    settings.PORTAL_PUBLIC_URL = "http://testserver"
    return AssetFactory(content=b"portrait bytes")


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def test_signed_link_serves_the_private_file(asset, client: Client):
    response = client.get(_path(signed_file_url(asset.file, expires_in=60)))

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"portrait bytes"
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-store"


def test_signed_link_stops_working_when_it_expires(asset, client: Client):
    with time_machine.travel("2026-11-24 10:00:00Z"):
        url = signed_file_url(asset.file, expires_in=60)
    with time_machine.travel("2026-11-24 10:00:59Z"):
        assert client.get(_path(url)).status_code == 200
    with time_machine.travel("2026-11-24 10:01:01Z"):
        assert client.get(_path(url)).status_code == 404


def test_altered_link_is_refused(asset, client: Client):
    url = _path(signed_file_url(asset.file, expires_in=60))
    token = url.split("/")[2]
    forged = url.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert client.get(forged).status_code == 404


def test_private_files_have_no_public_url(asset):
    with pytest.raises(ValueError):
        asset.file.storage.url(asset.file.name)


def test_stored_asset_names_take_the_extension_of_the_measured_type_not_of_the_upload():
    asset = AssetFactory(
        file=ContentFile(b"jpeg bytes", name="Jane_Doe_front.HTML"), content_type="image/jpeg"
    )

    assert "Jane" not in asset.file.name
    assert asset.file.name.endswith(".jpg")
    assert "Jane" not in signed_file_url(asset.file)


@pytest.mark.parametrize("expires_in", [0, -1, -900])
def test_a_link_that_would_be_dead_on_arrival_is_a_programming_error(asset, expires_in):
    with pytest.raises(ValueError, match="at least one second"):
        signed_file_url(asset.file, expires_in=expires_in)


def test_a_link_without_a_lifetime_lives_private_file_url_max_age(asset, settings, client):
    settings.PRIVATE_FILE_URL_MAX_AGE = 120
    with time_machine.travel("2026-11-24 10:00:00Z"):
        url = _path(signed_file_url(asset.file))
    with time_machine.travel("2026-11-24 10:01:59Z"):
        assert client.get(url).status_code == 200
    with time_machine.travel("2026-11-24 10:02:01Z"):
        assert client.get(url).status_code == 404
