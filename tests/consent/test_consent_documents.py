"""Signed consent documents: PDF, JPEG or PNG, recognised from the bytes, within a size limit."""

from __future__ import annotations

import io
import posixpath

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import Image

from consent.models import ConsentRecord
from sandbox.samples import make_image
from tests.factories import ConsentRecordFactory, PersonFactory

pytestmark = pytest.mark.django_db


def make_pdf() -> bytes:
    """A real one-page PDF (Pillow writes PDF)."""
    buffer = io.BytesIO()
    Image.new("RGB", (200, 280), "white").save(buffer, "PDF")
    return buffer.getvalue()


def _attach(content: bytes, name: str) -> ConsentRecord:
    """A consent record with ``content`` attached as ``name``, checked and saved as forms do."""
    record = ConsentRecordFactory.build(person=PersonFactory())
    record.signed_document = ContentFile(content, name=name)  # type: ignore[assignment]
    record.full_clean()
    record.save()
    return record


def _refusal(content: bytes, name: str) -> str:
    with pytest.raises(ValidationError) as caught:
        _attach(content, name)
    return " ".join(caught.value.message_dict["signed_document"])


@pytest.mark.parametrize(
    ("content", "name", "stored"),
    [
        (make_pdf(), "signed.pdf", "signed.pdf"),
        (make_image(fmt="JPEG"), "scan.JPEG", "scan.jpg"),
        (make_image(fmt="PNG"), "photo.png", "photo.png"),
        (make_pdf(), "signed consent", "signed_consent.pdf"),
    ],
)
def test_pdf_jpeg_and_png_are_stored_under_the_extension_of_their_bytes(content, name, stored):
    record = _attach(content, name)

    assert posixpath.basename(record.signed_document.name) == stored
    assert record.signed_document.name.startswith(f"consent/{record.person_id}/")


@pytest.mark.parametrize(
    ("content", "name"),
    [
        (b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + bytes(64), "consent.exe"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "c.svg"),
        (b"<!doctype html><script>alert(document.domain)</script>", "consent.html"),
        (b"", "empty.pdf"),
    ],
)
def test_anything_but_pdf_jpeg_or_png_is_refused(content: bytes, name: str):
    message = _refusal(content, name)

    assert f"“{name}” is not a PDF, JPEG or PNG file." in message
    assert not ConsentRecord.objects.exists()


def test_a_pdf_cut_short_is_refused_as_damaged():
    message = _refusal(make_pdf()[:-40], "signed.pdf")

    assert "“signed.pdf” starts like a PDF, JPEG or PNG file but cannot be read" in message


def test_a_png_with_damaged_data_is_refused():
    png = bytearray(make_image(fmt="PNG"))
    png[len(png) // 2] ^= 0xFF  # inside the pixel data: the chunk's checksum no longer matches

    assert "cannot be read" in _refusal(bytes(png), "photo.png")


def test_a_document_larger_than_the_limit_is_refused(settings):
    pdf = make_pdf()
    settings.CONSENT_DOCUMENT_MAX_BYTES = len(pdf) - 1

    assert "a consent document may be at most" in _refusal(pdf, "signed.pdf")


def test_a_document_whose_name_contradicts_its_bytes_is_refused():
    message = _refusal(make_pdf(), "scan.png")

    assert "“scan.png” is a PDF document: rename it to .pdf" in message


def test_a_stored_document_is_not_read_again_when_the_record_is_checked():
    record = ConsentRecordFactory(with_document=True)  # stored without any check

    record.full_clean()


def _consent_form(person_pk: int, document: SimpleUploadedFile) -> dict[str, object]:
    return {
        "person": person_pk,
        "consent_text_version": "2026.1",
        "capture_method": ConsentRecord.CaptureMethod.IN_PERSON,
        "intended_uses": "Reference likeness.",
        "covers_images": "on",
        "territory": "Worldwide",
        "starts_on": "2026-11-24",
        "consent_text_language": "en",
        "representation": ConsentRecord.Representation.NONE,
        "signed_document": document,
        "uses-TOTAL_FORMS": "0",
        "uses-INITIAL_FORMS": "0",
    }


def test_the_admin_refuses_an_svg_consent_document_with_the_reason(superuser_client: Client):
    svg = SimpleUploadedFile("consent.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>")

    response = superuser_client.post(
        reverse("admin:consent_consentrecord_add"), _consent_form(PersonFactory().pk, svg)
    )

    assert response.status_code == 200
    assert "“consent.svg” is not a PDF, JPEG or PNG file." in response.content.decode()
    assert not ConsentRecord.objects.exists()


def test_the_admin_stores_a_pdf_consent_document_and_says_what_it_accepts(
    superuser_client: Client,
):
    url = reverse("admin:consent_consentrecord_add")
    pdf = SimpleUploadedFile("Jane Doe consent", make_pdf(), content_type="text/plain")

    page = superuser_client.get(url).content.decode()
    response = superuser_client.post(url, _consent_form(PersonFactory().pk, pdf))

    assert "PDF, JPEG or PNG, at most 20.0\xa0MB" in page
    assert 'accept="application/pdf,image/jpeg,image/png' in page
    assert response.status_code == 302
    assert ConsentRecord.objects.get().signed_document.name.endswith(".pdf")
