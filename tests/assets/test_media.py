"""Local media validation against the upstream's limits, with real files made on the fly."""

from __future__ import annotations

import contextlib
import hashlib
import io
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

import av
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import ExifTags, Image

from assets.media import (
    FORMATS,
    LIMITS,
    MB,
    LocationNotRemovable,
    MediaInfo,
    MediaRejected,
    check_limits,
    face_precheck,
    probe_media,
    strip_location,
    validate_media,
)
from assets.models import AssetKind
from portal.private_files import FILE_TYPES
from sandbox.samples import make_audio, make_image, make_video
from tests.media_corpus import (
    AROUND_LIMITS,
    DAMAGED,
    LOCATION_MARKERS,
    REFUSED_FORMATS,
    SEED_FORMATS,
    Sample,
    face_picture,
    image_with_location,
    mp3_sync_word_then_noise,
    mp4_with_invalid_utf8_comment,
    multi_picture_jpeg_with_location,
    pad_to,
    resave,
    seed,
    variable_rate_video,
    video_with_location,
    wav_with_latin1_title,
)

# One acceptable measurement per kind; each limit test changes only what it is about.
VALID = {
    "image": MediaInfo(
        kind="image",
        format="jpeg",
        content_type="image/jpeg",
        size_bytes=2 * MB,
        sha256="0" * 64,
        width=1200,
        height=1600,
    ),
    "video": MediaInfo(
        kind="video",
        format="mp4",
        content_type="video/mp4",
        size_bytes=10 * MB,
        sha256="0" * 64,
        width=720,
        height=1280,
        duration_seconds=5.0,
        fps=30.0,
    ),
    "audio": MediaInfo(
        kind="audio",
        format="mp3",
        content_type="audio/mpeg",
        size_bytes=1 * MB,
        sha256="0" * 64,
        duration_seconds=5.0,
    ),
}


def codes_of(kind: str, **measured: object) -> list[str]:
    return [v.code for v in check_limits(replace(VALID[kind], **measured))]


def messages_of(kind: str, **measured: object) -> list[str]:
    return [v.message for v in check_limits(replace(VALID[kind], **measured))]


def rejection(upload: bytes | BinaryIO, filename: str = "upload") -> list[tuple[str, str]]:
    """(code, message) of every violation; fails the test when the file is accepted."""
    fileobj = io.BytesIO(upload) if isinstance(upload, bytes) else upload
    with pytest.raises(MediaRejected) as rejected:
        validate_media(fileobj, filename=filename)
    return [(v.code, v.message) for v in rejected.value.violations]


def verdict(sample: Sample) -> tuple[str, ...]:
    """The violation codes ``validate_media`` gives the sample's file (empty: accepted)."""
    try:
        validate_media(io.BytesIO(sample.make()), filename=sample.name)
    except MediaRejected as rejected:
        return tuple(v.code for v in rejected.violations)
    return ()


def case_id(value: object) -> str | None:
    """Readable ids, e.g. ``video-fps=60.01-fps`` or ``image-width=300,height=300-accepted``."""
    if isinstance(value, dict):
        return ",".join(f"{name}={number}" for name, number in value.items())
    if isinstance(value, list):
        return "+".join(value) or "accepted"
    return None


# --- The limits table ---------------------------------------------------------------------------


def test_limits_cover_every_asset_kind() -> None:
    assert set(LIMITS) == set(AssetKind.values) == set(VALID)


@pytest.mark.parametrize("kind", VALID)
def test_typical_measurements_break_no_limit(kind: str) -> None:
    assert check_limits(VALID[kind]) == []


@pytest.mark.parametrize(
    ("kind", "measured", "expected"),
    [
        # Size: images strictly below 30 MB, video and audio up to and including the limit.
        ("image", {"size_bytes": 30 * MB - 1}, []),
        ("image", {"size_bytes": 30 * MB}, ["file_too_large"]),
        ("video", {"size_bytes": 50 * MB}, []),
        ("video", {"size_bytes": 50 * MB + 1}, ["file_too_large"]),
        ("audio", {"size_bytes": 15 * MB}, []),
        ("audio", {"size_bytes": 15 * MB + 1}, ["file_too_large"]),
        # Sides 300-6000 px; one violation even when both sides are wrong.
        ("image", {"width": 300, "height": 300}, []),
        ("image", {"width": 299, "height": 300}, ["image_too_small"]),
        ("image", {"width": 6000, "height": 6000}, []),
        ("image", {"width": 6000, "height": 6001}, ["image_too_large"]),
        ("image", {"width": 200, "height": 7000}, ["image_too_small", "aspect_ratio"]),
        ("video", {"width": 299, "height": 700}, ["video_too_small", "pixel_count"]),
        ("video", {"width": 6001, "height": 2401}, ["video_too_large", "pixel_count"]),
        # Width/height 0.4-2.5, both ends included.
        ("image", {"width": 750, "height": 300}, []),
        ("image", {"width": 753, "height": 300}, ["aspect_ratio"]),
        ("image", {"width": 300, "height": 750}, []),
        ("image", {"width": 300, "height": 753}, ["aspect_ratio"]),
        ("video", {"width": 1600, "height": 640}, []),
        ("video", {"width": 1601, "height": 640}, ["aspect_ratio"]),
        # Video pixels 409,600-2,086,876.
        ("video", {"width": 640, "height": 640}, []),
        ("video", {"width": 640, "height": 639}, ["pixel_count"]),
        ("video", {"width": 1103, "height": 1892}, []),
        ("video", {"width": 1104, "height": 1892}, ["pixel_count"]),
        # Duration 2-15 s.
        ("video", {"duration_seconds": 2.0}, []),
        ("video", {"duration_seconds": 1.99}, ["too_short"]),
        ("video", {"duration_seconds": 15.0}, []),
        ("video", {"duration_seconds": 15.01}, ["too_long"]),
        ("audio", {"duration_seconds": 2.0}, []),
        ("audio", {"duration_seconds": 1.9}, ["too_short"]),
        ("audio", {"duration_seconds": 15.0}, []),
        ("audio", {"duration_seconds": 15.5}, ["too_long"]),
        # 24-60 frames per second; 23.976 (film on NTSC) is below.
        ("video", {"fps": 24.0}, []),
        ("video", {"fps": float(Fraction(24000, 1001))}, ["fps"]),
        ("video", {"fps": 60.0}, []),
        ("video", {"fps": 60.01}, ["fps"]),
        # A format of another kind, and measurements a probe could not make.
        ("audio", {"format": "mp4"}, ["unsupported_format"]),
        ("image", {"width": None}, ["unreadable"]),
        ("video", {"duration_seconds": None, "fps": None}, ["unreadable", "unreadable"]),
    ],
    ids=case_id,
)
def test_limit_holds_at_its_boundary_and_breaks_just_past_it(
    kind: str, measured: dict[str, object], expected: list[str]
) -> None:
    assert codes_of(kind, **measured) == expected


def test_violation_message_says_what_was_measured_and_the_limit() -> None:
    (violation,) = check_limits(replace(VALID["image"], width=250, height=400))

    assert violation.code == "image_too_small"
    assert violation.message == (
        "The image is 250 × 400 px; each side must be between 300 and 6000 px."  # noqa: RUF001
    )


def test_size_message_gives_bytes_and_the_strict_image_limit() -> None:
    (violation,) = check_limits(replace(VALID["image"], size_bytes=30 * MB))

    assert violation.message == (
        "The file is 30,000,000 bytes (30.0 MB); image files must be smaller than 30 MB."
    )


@pytest.mark.parametrize(
    ("kind", "measured", "shown"),
    [
        ("image", {"width": 999, "height": 2500}, "a width/height ratio of 0.3996;"),
        ("image", {"width": 2501, "height": 1000}, "a width/height ratio of 2.501;"),
        ("audio", {"duration_seconds": 15.0004}, "lasts 15.0004 s;"),
        ("video", {"duration_seconds": 1.99999}, "lasts 1.99999 s;"),
        ("video", {"fps": 60.0001}, "has 60.0001 frames per second;"),
        ("video", {"size_bytes": 50 * MB + 1}, "(50.000001 MB); video files must be at most"),
    ],
    ids=["ratio", "ratio-high", "duration", "duration-low", "fps", "size"],
)
def test_rounding_never_makes_a_violation_look_within_the_limit(
    kind: str, measured: dict[str, object], shown: str
) -> None:
    (message,) = messages_of(kind, **measured)

    assert shown in message


def test_a_rule_broken_twice_gets_one_message() -> None:
    violations = check_limits(replace(VALID["image"], width=200, height=7000))

    assert [v.message for v in violations] == [
        "The image is 200 × 7000 px; each side must be between 300 and 6000 px.",  # noqa: RUF001
        "The image is 200 × 7000 px, a width/height ratio of 0.029; "  # noqa: RUF001
        "it must be between 0.4 and 2.5.",
    ]


def test_each_kind_describes_its_limits_for_staff() -> None:
    assert LIMITS["image"].describe() == (
        "JPEG, PNG, WebP, GIF or HEIC, under 30 MB, each side 300-6000 px, width/height 0.4-2.5"
    )
    assert LIMITS["audio"].describe() == "MP3 or WAV, at most 15 MB, 2-15 s"
    assert "409,600-2,086,876 pixels, 2-15 s, 24-60 fps" in LIMITS["video"].describe()


# --- Real files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: make_image(fmt="JPEG"), ("image", "jpeg", "image/jpeg", 1200, 1600, None, None)),
        (
            lambda: make_image(width=600, height=800, fmt="PNG"),
            ("image", "png", "image/png", 600, 800, None, None),
        ),
        (
            lambda: make_image(width=800, height=600, fmt="WEBP"),
            ("image", "webp", "image/webp", 800, 600, None, None),
        ),
        (
            lambda: make_image(width=500, height=500, fmt="GIF"),
            ("image", "gif", "image/gif", 500, 500, None, None),
        ),
        (
            lambda: make_image(width=400, height=600, fmt="HEIC"),
            ("image", "heic", "image/heic", 400, 600, None, None),
        ),
        (
            lambda: make_video(width=640, height=640, seconds=2, fps=24),
            ("video", "mp4", "video/mp4", 640, 640, 2.0, 24.0),
        ),
        (
            lambda: make_video(width=480, height=854, seconds=2.5, fps=30, container="mov"),
            ("video", "mov", "video/quicktime", 480, 854, 2.5, 30.0),
        ),
        (
            lambda: make_video(width=640, height=640, seconds=2, fps=60, codec="mpeg4"),
            ("video", "mp4", "video/mp4", 640, 640, 2.0, 60.0),
        ),
        (lambda: make_audio(fmt="wav"), ("audio", "wav", "audio/wav", None, None, 3.0, None)),
        (lambda: make_audio(fmt="mp3"), ("audio", "mp3", "audio/mpeg", None, None, 3.0, None)),
    ],
    ids=["jpeg", "png", "webp", "gif", "heic", "mp4", "mov", "mp4-mpeg4-60fps", "wav", "mp3"],
)
def test_every_supported_format_is_accepted_and_measured(
    make: Callable[[], bytes], expected: tuple[object, ...]
) -> None:
    info = validate_media(io.BytesIO(make()), filename="no-extension")

    measured = (info.kind, info.format, info.content_type, info.width, info.height)
    assert (*measured, info.duration_seconds, info.fps) == expected


@pytest.mark.parametrize("sample", AROUND_LIMITS, ids=lambda sample: sample.id)
def test_real_file_at_or_just_past_a_limit_gets_exactly_its_violations(sample: Sample) -> None:
    assert verdict(sample) == sample.codes


@pytest.mark.parametrize("sample", DAMAGED, ids=lambda sample: sample.id)
def test_damaged_file_is_refused_never_accepted_nor_crashing(sample: Sample) -> None:
    assert verdict(sample) == sample.codes


@pytest.mark.parametrize(
    ("make", "filename", "name"),
    [
        (lambda: make_image(width=400, height=400)[:300], "cut.jpg", "JPEG"),
        (lambda: make_video(width=640, height=640, seconds=2)[:2000], "cut.mp4", "MP4"),
        (mp3_sync_word_then_noise, "noise.mp3", "MP3"),
    ],
    ids=["jpeg", "mp4", "mp3"],
)
def test_damaged_file_with_a_supported_header_is_explained(
    make: Callable[[], bytes], filename: str, name: str
) -> None:
    assert rejection(make(), filename) == [
        (
            "unreadable",
            f"“{filename}” cannot be read as {name}: the file is damaged or incomplete.",
        )
    ]


REFUSED_NAMED = {
    "clip.3gp": "“clip.3gp” is in 3GP format, which is not accepted.",
    "picture.avif": "“picture.avif” is in AVIF format, which is not accepted.",
    "voice.m4a": "“voice.m4a” is in M4A (MPEG-4 audio) format, which is not accepted.",
    "voice-in-mp4.mp4": "This MP4 file has no video track; audio must be MP3 or WAV.",
    "picture.bmp": "“picture.bmp” is in BMP format, which is not accepted.",
    "picture.tiff": "“picture.tiff” is in TIFF format, which is not accepted.",
    "voice.flac": "“voice.flac” is in FLAC format, which is not accepted.",
    "clip.mkv": "“clip.mkv” is in Matroska/WebM format, which is not accepted.",
    "voice.ogg": "“voice.ogg” is in Ogg format, which is not accepted.",
}


@pytest.mark.parametrize("sample", REFUSED_FORMATS, ids=lambda sample: sample.id)
def test_format_close_to_an_accepted_one_is_refused_by_its_name(sample: Sample) -> None:
    ((code, message),) = rejection(sample.make(), sample.name)

    assert (code, message.split(" Accepted: ")[0]) == (
        "unsupported_format",
        REFUSED_NAMED[sample.name],
    )


def test_refusal_lists_what_is_accepted() -> None:
    ((_, message),) = rejection(make_image(width=400, height=400, fmt="BMP"), "a.bmp")

    assert message.endswith(
        "Accepted: images in JPEG, PNG, WebP, GIF or HEIC; videos in MP4 or MOV; "
        "audio in MP3 or WAV."
    )


@pytest.mark.parametrize(
    ("content", "filename"),
    [
        (b"not a picture, just notes\n" * 40, "notes.jpg"),
        (b"not a video, just notes\n" * 40, "clip.mp4"),
        (b"not a sound, just notes\n" * 40, "voice.ogg"),
    ],
    ids=["jpg", "mp4", "ogg"],
)
def test_format_is_never_guessed_from_the_name(content: bytes, filename: str) -> None:
    # FFmpeg once named a text file called *.jpg an "image2 sequence" file from its extension.
    assert rejection(content, filename) == [
        (
            "unreadable",
            f"“{filename}” is not a readable image, video or audio file. Accepted: images in "
            "JPEG, PNG, WebP, GIF or HEIC; videos in MP4 or MOV; audio in MP3 or WAV.",
        )
    ]


def test_format_and_content_type_come_from_the_bytes() -> None:
    png = io.BytesIO(make_image(width=400, height=500, fmt="PNG"))

    info = validate_media(png, filename="evil.mp4")

    assert (info.format, info.content_type) == ("png", "image/png")
    assert {fmt.content_type for fmt in FORMATS.values()} <= {t.content_type for t in FILE_TYPES}


def test_every_violation_of_a_file_is_reported_together() -> None:
    data = make_video(width=320, height=320, seconds=1, fps=23, codec="mpeg4")

    with pytest.raises(MediaRejected) as rejected:
        validate_media(io.BytesIO(data), filename="clip.mp4")

    violations = rejected.value.violations
    assert [v.code for v in violations] == ["pixel_count", "too_short", "fps"]
    assert str(rejected.value) == " ".join(v.message for v in violations)


def test_empty_file_from_disk_is_refused_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"")

    with path.open("rb") as fileobj, pytest.raises(MediaRejected) as rejected:
        validate_media(fileobj, filename=path.name)

    assert [(v.code, v.message) for v in rejected.value.violations] == [
        ("unreadable", "“clip.mp4” is empty.")
    ]


# --- Metadata -----------------------------------------------------------------------------------


def test_image_size_is_reported_as_displayed_after_exif_rotation() -> None:
    # A phone stores a portrait as a landscape image plus "rotate 90°" (orientation 6).
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    landscape = make_image(width=800, height=600)

    for fmt in ("JPEG", "PNG"):
        info = probe_media(io.BytesIO(resave(landscape, fmt, exif=exif)), filename="portrait")

        assert (info.format, info.width, info.height) == (fmt.lower(), 600, 800)


def test_image_with_damaged_exif_is_measured_as_stored() -> None:
    data = bytearray(make_image(width=800, height=600, face="ada"))
    tiff_header = data.index(b"Exif\x00\x00") + 6
    data[tiff_header : tiff_header + 4] = b"XXXX"  # neither "II*\0" nor "MM\0*"

    info = validate_media(io.BytesIO(bytes(data)), filename="broken-exif.jpg")

    assert (info.width, info.height) == (800, 600)


@pytest.mark.parametrize(
    ("make", "expected"),
    [(wav_with_latin1_title, ("wav", 3.0)), (mp4_with_invalid_utf8_comment, ("mp4", 2.0))],
    ids=["wav-latin1-title", "mp4-invalid-utf8-comment"],
)
def test_metadata_that_is_not_utf8_does_not_decide(
    make: Callable[[], bytes], expected: tuple[str, float]
) -> None:
    info = validate_media(io.BytesIO(make()), filename="upload")

    assert (info.format, info.duration_seconds) == expected


def test_variable_frame_rate_video_is_judged_by_its_average_rate() -> None:
    # Frames alternately 1/60 s and 1/10 s apart: the average is about 17 frames per second.
    data = variable_rate_video(frame_gaps=(2, 12), time_base=Fraction(1, 120), frames=48)
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].guessed_rate == 60  # what a naive check would read

    info = probe_media(io.BytesIO(data), filename="phone.mov")

    assert info.fps is not None
    assert 17 < info.fps < 18
    assert [v.code for v in check_limits(info)] == ["fps"]


# --- Memory and reading -------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns first
def test_picture_over_the_pixel_budget_is_refused_undecoded_naming_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)

    assert rejection(make_image(width=400, height=400, fmt="PNG")) == [
        (
            "image_too_large",
            "The image is 400 × 400 px = 160,000 pixels; "  # noqa: RUF001
            "the portal opens images of at most 100,000 pixels.",
        )
    ]


def test_picture_far_over_the_pixel_budget_is_refused_at_its_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # Pillow refuses at twice that

    assert rejection(make_image(width=400, height=400)) == [
        (
            "image_too_large",
            "The image has more than 20,000 pixels; "
            "the portal opens images of at most 20,000 pixels.",
        )
    ]


class CountingReader(io.RawIOBase):
    """A read-only file that counts the bytes read from it."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._fileobj = fileobj
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._fileobj.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._fileobj.seek(offset, whence)

    def tell(self) -> int:
        return self._fileobj.tell()


def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.mp4"
    with path.open("wb") as sparse:  # 300 MB on paper, a few KB on disk
        sparse.write(seed("mp4"))
        sparse.truncate(300 * MB)

    with path.open("rb") as fileobj:
        reader = CountingReader(fileobj)
        tracemalloc.start()
        try:
            codes = [code for code, _ in rejection(reader, path.name)]
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert codes == ["file_too_large"]
    assert reader.bytes_read <= 1024
    assert peak < 1 * MB


@pytest.mark.parametrize(
    ("make", "size"),
    [
        (lambda: make_video(width=640, height=640, seconds=2, fps=24), 50 * MB),
        (lambda: make_image(width=800, height=1000, fmt="PNG"), 30 * MB - 1),
        (lambda: make_audio(seconds=3), 15 * MB),
    ],
    ids=["mp4-50MB", "png-30MB", "wav-15MB"],
)
def test_peak_memory_stays_flat_in_the_file_size(
    tmp_path: Path, make: Callable[[], bytes], size: int
) -> None:
    path = tmp_path / "upload"
    path.write_bytes(pad_to(make(), size))

    with path.open("rb") as fileobj:
        tracemalloc.start()
        try:
            info = validate_media(fileobj, filename="upload")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    assert info.size_bytes == size
    assert peak < 4 * MB  # reads are 1 MiB at most: never the whole file


def test_size_and_sha256_are_those_of_the_whole_file() -> None:
    data = make_image(width=400, height=500)

    info = probe_media(io.BytesIO(data), filename="a.jpg")

    assert (info.size_bytes, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_image(width=400, height=500),
        lambda: make_image(width=100, height=100),
        lambda: b"plain text",
        lambda: make_video(width=640, height=640, seconds=2, fps=24),
    ],
    ids=["accepted", "rejected", "unreadable", "video"],
)
def test_file_is_read_from_the_start_and_rewound(make: Callable[[], bytes]) -> None:
    fileobj = io.BytesIO(make())
    fileobj.seek(7)

    with contextlib.suppress(MediaRejected):  # rejected or not, the position is reset
        validate_media(fileobj, filename="a.jpg")

    assert fileobj.tell() == 0


def test_django_upload_is_validated_as_is() -> None:
    upload = SimpleUploadedFile("voice.wav", make_audio(), content_type="application/octet-stream")

    info = validate_media(upload, filename=upload.name)

    assert (info.content_type, info.duration_seconds) == ("audio/wav", 3.0)


# --- Any damage, any file: a verdict, never an exception ----------------------------------------

MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["overwrite", "insert", "delete", "zero", "truncate"]),
        st.floats(min_value=0, max_value=1, exclude_max=True),  # where, as a share of the file
        st.binary(min_size=1, max_size=16),  # what to write or insert
        st.integers(min_value=1, max_value=4096),  # how many bytes to delete or zero
    ),
    min_size=1,
    max_size=4,
)


def mutated(data: bytes, mutations: list[tuple[str, float, bytes, int]]) -> bytes:
    result = bytearray(data)
    for operation, where, content, length in mutations:
        at = int(where * len(result))
        if operation == "overwrite":
            result[at : at + len(content)] = content
        elif operation == "insert":
            result[at:at] = content
        elif operation == "delete":
            del result[at : at + length]
        elif operation == "zero":
            result[at : at + length] = bytes(len(result[at : at + length]))
        else:
            del result[at:]
    return bytes(result)


@hypothesis_settings(  # the profile's example count: 100 by default, more where a profile says
    deadline=None,  # a video takes tens of milliseconds; a busy machine must not fail the test
    database=None,  # no example database in the checkout
    suppress_health_check=[HealthCheck.too_slow],
)
@given(fmt=st.sampled_from(SEED_FORMATS), mutations=MUTATIONS)
def test_any_damage_to_a_real_file_ends_in_a_verdict(
    fmt: str, mutations: list[tuple[str, float, bytes, int]]
) -> None:
    data = mutated(seed(fmt), mutations)

    try:
        info = validate_media(io.BytesIO(data), filename=f"upload.{fmt}")
    except MediaRejected as rejected:
        assert rejected.violations
        assert all(v.code and v.message for v in rejected.violations)
        return
    assert info.size_bytes == len(data)
    with contextlib.suppress(LocationNotRemovable):  # the only exception allowed to escape
        copy = strip_location(io.BytesIO(data), info)
        if copy is not None:
            with copy:
                assert len(copy.read()) == len(data)


# --- The upstream's copy, without location ------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "orientation"),
    [
        (lambda: image_with_location("JPEG", orientation=6), 6),
        (lambda: image_with_location("PNG", orientation=6), 6),
        (lambda: image_with_location("WEBP", orientation=6), 6),
        (lambda: image_with_location("HEIF"), 1),
        (multi_picture_jpeg_with_location, 1),
    ],
    ids=["jpeg", "png", "webp", "heic", "mpo"],
)
def test_picture_copy_loses_gps_and_xmp_and_keeps_the_rest(
    make: Callable[[], bytes], orientation: int
) -> None:
    data = make()
    original = io.BytesIO(data)
    info = validate_media(original, filename="portrait")

    copy = strip_location(original, info)

    assert copy is not None
    with copy:
        stripped = copy.read()
    assert original.getvalue() == data  # the stored original keeps its bytes and hash
    assert [marker for marker in LOCATION_MARKERS if marker in stripped] == []
    assert replace(validate_media(io.BytesIO(stripped), filename="copy"), sha256="") == replace(
        info, sha256=""
    )
    picture = Image.open(io.BytesIO(stripped))
    for frame in range(getattr(picture, "n_frames", 1)):  # a multi-picture JPEG has two
        picture.seek(frame)
        exif = picture.getexif()
        assert dict(exif.get_ifd(ExifTags.IFD.GPSInfo)) == {}
        assert (exif[ExifTags.Base.Orientation], exif[ExifTags.Base.Make]) == (
            orientation,
            "PortalCam",
        )


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: video_with_location("mp4"), "location"),
        (lambda: video_with_location("mov"), "location"),
        (
            lambda: video_with_location("mov", apple_keys=True),
            "com.apple.quicktime.location.ISO6709",
        ),
    ],
    ids=["mp4-loci", "mov-xyz", "mov-apple-keys"],
)
def test_video_copy_loses_its_location_without_remuxing(
    make: Callable[[], bytes], key: str
) -> None:
    data = make()
    with av.open(io.BytesIO(data)) as container:
        assert container.metadata[key] == "+48.8584+002.2945/"
    info = validate_media(io.BytesIO(data), filename="clip")

    copy = strip_location(io.BytesIO(data), info)

    assert copy is not None
    with copy:
        stripped = copy.read()
    assert len(stripped) == len(data)
    with av.open(io.BytesIO(stripped)) as container:
        assert not container.metadata.get(key)
    assert replace(validate_media(io.BytesIO(stripped), filename="copy"), sha256="") == replace(
        info, sha256=""
    )


@pytest.mark.parametrize("fmt", SEED_FORMATS)
def test_file_without_location_needs_no_copy(fmt: str) -> None:
    fileobj = io.BytesIO(seed(fmt))
    info = validate_media(fileobj, filename="upload")

    assert strip_location(fileobj, info) is None
    assert fileobj.tell() == 0


# --- Face pre-check -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faces", "warning"),
    [(1, None), (0, "No face was found in this picture."), (2, "2 faces were found")],
)
def test_face_precheck_warns_when_a_picture_shows_no_face_or_several(
    faces: int, warning: str | None
) -> None:
    data = face_picture(faces)
    info = validate_media(io.BytesIO(data), filename="portrait.jpg")

    warnings = face_precheck(io.BytesIO(data), info)

    assert [w.startswith(warning) for w in warnings] == ([True] if warning else [])


def test_face_precheck_is_off_by_setting_and_for_sound(settings) -> None:
    data = face_picture(0)
    info = validate_media(io.BytesIO(data), filename="empty-room.jpg")
    wav = make_audio()
    sound = validate_media(io.BytesIO(wav), filename="voice.wav")

    assert face_precheck(io.BytesIO(wav), sound) == []
    settings.MEDIA_FACE_PRECHECK = False
    assert face_precheck(io.BytesIO(data), info) == []
