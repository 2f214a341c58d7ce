"""The sandbox's face identity rule: markers written by the samples and read back."""

from __future__ import annotations

import io

import pytest
from PIL import ExifTags, Image

from sandbox.faces import (
    IDENTITIES,
    IDENTITY_DESCRIPTIONS,
    MULTIPLE_FACES,
    face_identity_of,
)
from sandbox.samples import make_audio, make_image, make_video

# Every image format and video container that can carry a face: (kind, format).
VISUAL_FORMATS = [
    *(("image", fmt) for fmt in ["JPEG", "PNG", "WEBP", "GIF", "HEIC"]),
    *(("video", container) for container in ["mp4", "mov"]),
]


def small_sample(kind: str, fmt: str, face: str | None) -> bytes:
    if kind == "image":
        return make_image(width=300, height=400, fmt=fmt, face=face)
    return make_video(width=320, height=320, seconds=0.2, container=fmt, face=face)


@pytest.mark.parametrize(("kind", "fmt"), VISUAL_FORMATS)
@pytest.mark.parametrize("face", ["ada", MULTIPLE_FACES])
def test_marker_survives_a_round_trip_in_every_format(kind: str, fmt: str, face: str) -> None:
    data = small_sample(kind, fmt, face)

    assert face_identity_of(io.BytesIO(data), kind=kind) == face


@pytest.mark.parametrize(("kind", "fmt"), VISUAL_FORMATS)
def test_file_without_a_marker_has_no_identity(kind: str, fmt: str) -> None:
    data = small_sample(kind, fmt, face=None)

    assert face_identity_of(io.BytesIO(data), kind=kind) is None


@pytest.mark.parametrize("identity", IDENTITIES)
def test_every_demo_identity_round_trips_and_is_described(identity: str) -> None:
    data = small_sample("image", "JPEG", identity)

    assert face_identity_of(io.BytesIO(data), kind="image") == identity
    assert IDENTITY_DESCRIPTIONS[identity]


def test_image_description_that_is_not_a_marker_is_ignored() -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = "Holiday in Lisbon"
    buffer = io.BytesIO()
    Image.new("RGB", (300, 400)).save(buffer, "JPEG", exif=exif)

    assert face_identity_of(buffer, kind="image") is None


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_audio_never_shows_a_face(fmt: str) -> None:
    assert face_identity_of(io.BytesIO(make_audio(seconds=2, fmt=fmt)), kind="audio") is None


@pytest.mark.parametrize(("kind", "fmt"), [("image", "PNG"), ("video", "mp4")])
def test_file_is_rewound_after_reading_the_marker(kind: str, fmt: str) -> None:
    fileobj = io.BytesIO(small_sample(kind, fmt, "grace"))
    fileobj.seek(5)

    face_identity_of(fileobj, kind=kind)

    assert fileobj.tell() == 0


def test_an_overlong_marker_is_cut_to_the_stored_length():
    data = make_image(width=400, height=400, fmt="PNG", face="x" * 200)

    assert face_identity_of(io.BytesIO(data), kind="image") == "x" * 64
