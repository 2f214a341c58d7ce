"""Private files: names and types from the bytes, safe response headers, modes, link hygiene."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile, TemporaryUploadedFile
from django.db.models.fields.files import FieldFile
from django.test import Client
from django.urls import reverse

from assets.models import Asset
from assets.signing import signed_file_url
from portal.logredact import mask_file_tokens
from portal.private_files import download_filename, name_mismatch
from sandbox.samples import make_image
from tests.factories import AssetFactory, AssetGroupFactory, ConsentRecordFactory

pytestmark = pytest.mark.django_db

# A real JPEG with a page appended: it passes every image check, and a browser told it is
# text/html (or left to sniff) runs the script on the portal's origin.
POLYGLOT = make_image(width=600, height=800, fmt="JPEG") + (
    b"<html><body><script>fetch('/admin/').then(r => r.text())</script></body></html>"
)
SANDBOX_POLICY = "sandbox; default-src 'none'"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.PORTAL_PUBLIC_URL = "http://testserver"


def _path(url: str) -> str:
    return url.removeprefix("http://testserver")


def _add_asset(client: Client, name: str, content: bytes):
    upload = SimpleUploadedFile(name, content, content_type="text/html")
    group = AssetGroupFactory(verified=True)  # uploads need verification and consent
    return client.post(reverse("admin:assets_asset_add"), {"group": group.pk, "file": upload})


def _stored_files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _assert_private_headers(response) -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == SANDBOX_POLICY
    assert response["Cache-Control"] == "private, no-store"


# --- Names and types come from the bytes -----------------------------------------------------


def test_a_jpeg_with_html_appended_uploaded_as_html_is_refused_and_nothing_is_stored(
    superuser_client: Client, private_files: Path
):
    response = _add_asset(superuser_client, "evil.html", POLYGLOT)

    assert response.status_code == 200
    assert "“evil.html” is a JPEG image: rename it to .jpg" in response.content.decode()
    assert not Asset.objects.exists()
    assert _stored_files(private_files) == []


def test_the_same_polyglot_named_jpg_is_stored_as_jpg_and_served_as_a_sandboxed_jpeg(
    superuser_client: Client, client: Client
):
    _add_asset(superuser_client, "evil.jpg", POLYGLOT)
    asset = Asset.objects.get()

    response = client.get(_path(signed_file_url(asset.file, expires_in=60)))

    assert asset.file.name.endswith(".jpg")
    assert asset.content_type == "image/jpeg"
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    _assert_private_headers(response)
    # The upstream downloads asset files through signed links: inline, under the stored name.
    assert response["Content-Disposition"].startswith("inline; filename=")
    assert response["Content-Disposition"].endswith('.jpg"')


def test_a_png_named_mp4_is_refused_with_the_name_it_should_have(superuser_client: Client):
    response = _add_asset(superuser_client, "portrait.mp4", make_image(fmt="PNG"))

    assert "“portrait.mp4” is a PNG image: rename it to .png" in response.content.decode()
    assert not Asset.objects.exists()


@pytest.mark.parametrize("name", ["face.JPG", "face.jpeg", "face.jfif", "face"])
def test_the_usual_names_of_a_jpeg_are_accepted(superuser_client: Client, name: str):
    response = _add_asset(superuser_client, name, make_image(width=600, height=800, label=name))

    assert response.status_code == 302
    assert Asset.objects.get().file.name.endswith(".jpg")


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("portrait.heif", "image/heic"),
        ("take.qt", "video/quicktime"),
        ("take.mov", "video/mp4"),  # one container family: phones name it either way
        ("voice.wave", "audio/wav"),
    ],
)
def test_aliases_of_a_type_agree_with_it(name: str, content_type: str):
    assert name_mismatch(name, content_type) is None


def test_an_asset_stored_under_an_uploaded_html_name_is_served_as_its_measured_type(
    client: Client, superuser_client: Client
):
    # Stored before names were derived from the bytes: the name says HTML, the row says JPEG.
    name = default_storage.save("assets/image/legacy.html", ContentFile(POLYGLOT))
    asset = AssetFactory(file=name, content_type="image/jpeg", original_filename="evil.html")

    signed = client.get(_path(signed_file_url(asset.file, expires_in=60)))
    admin = superuser_client.get(reverse("admin:assets_asset_file", args=[asset.pk]))

    for response in (signed, admin):
        assert response["Content-Type"] == "image/jpeg"
        _assert_private_headers(response)
    assert admin["Content-Disposition"] == 'attachment; filename="evil.jpg"'


def test_a_file_without_a_row_is_served_by_its_stored_extension_or_as_octet_stream(
    client: Client,
):
    record = ConsentRecordFactory(with_document=True)
    legacy = default_storage.save("consent/1/0123abcd/signed.html", ContentFile(b"<script>"))

    document = client.get(_path(signed_file_url(record.signed_document, expires_in=60)))
    html = client.get(_path(signed_file_url(_field_file(legacy), expires_in=60)))

    assert document["Content-Type"] == "application/pdf"
    assert document["Content-Disposition"].startswith("attachment;")
    assert html["Content-Type"] == "application/octet-stream"
    assert html["Content-Disposition"] == 'attachment; filename="signed"'
    _assert_private_headers(html)


@pytest.mark.parametrize("name", ["secrets/notes.txt", "assets/../secrets/notes.txt"])
def test_signed_links_serve_only_the_asset_and_consent_folders(client: Client, name: str):
    default_storage.save("secrets/notes.txt", ContentFile(b"not for links"))

    response = client.get(_path(signed_file_url(_field_file(name), expires_in=60)))

    assert response.status_code == 404


def test_the_admin_file_view_sends_consent_documents_as_sandboxed_attachments(
    superuser_client: Client,
):
    record = ConsentRecordFactory(with_document=True)

    response = superuser_client.get(reverse("admin:consent_consentrecord_file", args=[record.pk]))

    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="consent.pdf"'
    _assert_private_headers(response)


@pytest.mark.parametrize(
    ("name", "content_type", "saved_as"),
    [
        ("evil.html", "image/jpeg", "evil.jpg"),
        ("face.jpeg", "image/jpeg", "face.jpeg"),
        ("notes.svg", "application/octet-stream", "notes"),
        ("take", "video/mp4", "take.mp4"),
    ],
)
def test_download_names_always_end_as_the_served_type(name, content_type, saved_as):
    assert download_filename(name, content_type) == saved_as


def _field_file(name: str) -> FieldFile:
    return FieldFile(None, Asset._meta.get_field("file"), name)


# --- File and folder modes -------------------------------------------------------------------


def _temporary_upload(content: bytes) -> TemporaryUploadedFile:
    """An upload as Django spools a large one to disk (moved into storage, not copied)."""
    upload = TemporaryUploadedFile("face.png", "image/png", len(content), None)
    upload.write(content)
    upload.seek(0)
    return upload


def _small_upload(content: bytes) -> ContentFile:
    return ContentFile(content, name="face.png")


@pytest.mark.parametrize("make_upload", [_small_upload, _temporary_upload])
def test_private_files_are_0600_in_0700_folders(private_files: Path, make_upload):
    upload = make_upload(b"portrait bytes")
    asset = AssetFactory(file=upload)
    upload.close()

    path = Path(asset.file.path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    folder = path.parent
    while folder != private_files.parent:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
        folder = folder.parent


# --- Tokens stay out of logs -----------------------------------------------------------------

TOKEN = "eyJuIjoiYXNzZXRzL2ltYWdlL2FiYy5wbmciLCJlIjoxfQ:1vXyZa:Sig_nature-0123"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"Not Found: /files/{TOKEN}/abc.png", "Not Found: /files/***/abc.png"),
        (
            f"https://portal.example/files/{TOKEN}/abc.png",
            "https://portal.example/files/***/abc.png",
        ),
        (
            f"URL=https%3A%2F%2Fportal%2Ffiles%2F{TOKEN.replace(':', '%3A')}%2Fabc.png",
            "URL=https%3A%2F%2Fportal%2Ffiles%2F***%2Fabc.png",
        ),
        (f'"GET /files/{TOKEN} HTTP/1.1" 404', '"GET /files/*** HTTP/1.1" 404'),
        ("GET /admin/assets/asset/1/file/ 200", "GET /admin/assets/asset/1/file/ 200"),
    ],
)
def test_mask_file_tokens_masks_the_token_of_every_signed_path(text: str, masked: str):
    assert mask_file_tokens(text) == masked


def test_a_request_for_an_expired_link_is_logged_without_its_token(client: Client, caplog):
    asset = AssetFactory()
    with time_machine.travel("2026-11-24 10:00:00Z"):
        url = _path(signed_file_url(asset.file, expires_in=60))
    token = url.split("/")[2]

    with time_machine.travel("2026-11-24 11:00:00Z"), caplog.at_level(logging.WARNING):
        assert client.get(url).status_code == 404

    logged = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert logged == [f"Not Found: {url.replace(token, '***')}"]


def test_the_console_log_masks_tokens_from_any_logger():
    console = next(h for h in logging.getLogger().handlers if h.get_name() == "console")
    record = logging.LogRecord(
        "celery", logging.INFO, __file__, 1, "fetching %s", (f"/files/{TOKEN}/a.png",), None
    )

    assert console.filter(record)
    assert TOKEN not in console.format(record)
    assert "/files/***/a.png" in console.format(record)
