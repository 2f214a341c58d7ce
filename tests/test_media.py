"""Local media validation against the upstream's limits, with real files made on the fly."""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction

import av
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import ExifTags, Image

from assets.media import (
    LIMITS,
    MB,
    MediaInfo,
    MediaRejected,
    check_limits,
    probe_media,
    validate_media,
)
from assets.models import AssetKind
from sandbox.samples import make_audio, make_image, make_video

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


def rejection_codes(data: bytes, filename: str = "upload") -> list[str]:
    with pytest.raises(MediaRejected) as rejected:
        validate_media(io.BytesIO(data), filename=filename)
    return [v.code for v in rejected.value.violations]


def case_id(value: object) -> str | None:
    """Readable ids, e.g. ``video-fps=60.01-fps`` or ``image-width=300,height=300-accepted``."""
    if isinstance(value, dict):
        return ",".join(f"{name}={number}" for name, number in value.items())
    if isinstance(value, list):
        return "+".join(value) or "accepted"
    return None


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
        # Sides 300-6000 px.
        ("image", {"width": 300, "height": 300}, []),
        ("image", {"width": 299, "height": 300}, ["image_too_small"]),
        ("image", {"width": 6000, "height": 6000}, []),
        ("image", {"width": 6000, "height": 6001}, ["image_too_large"]),
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


@pytest.mark.parametrize(
    "make",
    [
        lambda: make_image(width=300, height=400),
        lambda: make_image(width=750, height=300, fmt="PNG"),
        lambda: make_image(width=300, height=750, fmt="GIF"),
        lambda: make_audio(seconds=2.0),
        lambda: make_audio(seconds=2.0, fmt="mp3"),
        lambda: make_audio(seconds=15.0),
        lambda: make_audio(seconds=15.0, fmt="mp3"),
        lambda: make_video(width=640, height=640, seconds=2, fps=24),
    ],
    ids=[
        "image-300px",
        "image-aspect-2.5",
        "image-aspect-0.4",
        "wav-2s",
        "mp3-2s",
        "wav-15s",
        "mp3-15s",
        "video-640x640-2s-24fps",
    ],
)
def test_real_file_exactly_at_the_limits_is_accepted(make: Callable[[], bytes]) -> None:
    validate_media(io.BytesIO(make()), filename="upload")


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: make_image(width=299, height=400), ["image_too_small"]),
        (lambda: make_image(width=753, height=300, fmt="PNG"), ["aspect_ratio"]),
        (lambda: make_audio(seconds=1.9), ["too_short"]),
        (lambda: make_audio(seconds=1.9, fmt="mp3"), ["too_short"]),
        (lambda: make_audio(seconds=15.5), ["too_long"]),
        (lambda: make_audio(seconds=15.5, fmt="mp3"), ["too_long"]),
        (lambda: make_video(width=640, height=638, seconds=2, fps=24), ["pixel_count"]),
        (lambda: make_video(width=640, height=640, seconds=1.9, fps=30), ["too_short"]),
        (lambda: make_video(width=640, height=640, seconds=2, fps=23), ["fps"]),
    ],
    ids=[
        "image-299px",
        "image-aspect-2.51",
        "wav-1.9s",
        "mp3-1.9s",
        "wav-15.5s",
        "mp3-15.5s",
        "video-640x638",
        "video-1.9s",
        "video-23fps",
    ],
)
def test_real_file_just_past_a_limit_is_rejected(
    make: Callable[[], bytes], expected: list[str]
) -> None:
    assert rejection_codes(make()) == expected


def test_every_violation_of_a_file_is_reported_together() -> None:
    data = make_video(width=320, height=320, seconds=1, fps=23, codec="mpeg4")

    with pytest.raises(MediaRejected) as rejected:
        validate_media(io.BytesIO(data), filename="clip.mp4")

    violations = rejected.value.violations
    assert [v.code for v in violations] == ["pixel_count", "too_short", "fps"]
    assert str(rejected.value) == " ".join(v.message for v in violations)


def test_image_size_is_reported_as_displayed_after_exif_rotation() -> None:
    # A phone stores a portrait as a landscape image plus "rotate 90°" (orientation 6).
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    buffer = io.BytesIO()
    Image.open(io.BytesIO(make_image(width=800, height=600))).save(buffer, "JPEG", exif=exif)

    info = probe_media(buffer, filename="portrait.jpg")

    assert (info.width, info.height) == (600, 800)


def test_image_with_damaged_exif_is_measured_as_stored() -> None:
    data = bytearray(make_image(width=800, height=600, face="ada"))
    tiff_header = data.index(b"Exif\x00\x00") + 6
    data[tiff_header : tiff_header + 4] = b"XXXX"  # neither "II*\0" nor "MM\0*"

    info = validate_media(io.BytesIO(bytes(data)), filename="broken-exif.jpg")

    assert (info.width, info.height) == (800, 600)


def test_variable_frame_rate_video_is_judged_by_its_average_rate() -> None:
    # Frames alternately 1/60 s and 1/10 s apart: the average is about 17 frames per second.
    data = _variable_rate_video(frame_gaps=(2, 12), time_base=Fraction(1, 120), frames=48)
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].guessed_rate == 60  # what a naive check would read

    info = probe_media(io.BytesIO(data), filename="phone.mov")

    assert info.fps is not None
    assert 17 < info.fps < 18
    assert [v.code for v in check_limits(info)] == ["fps"]


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns first
def test_decompression_bomb_is_rejected_without_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)

    assert rejection_codes(make_image(width=400, height=400, fmt="PNG")) == ["image_too_large"]


def test_text_file_named_like_a_video_is_rejected_as_unreadable() -> None:
    with pytest.raises(MediaRejected) as rejected:
        validate_media(io.BytesIO(b"not a video, just notes\n" * 40), filename="clip.mp4")

    (violation,) = rejected.value.violations
    assert violation.code == "unreadable"
    assert "“clip.mp4” is not a readable image, video or audio file" in violation.message


@pytest.mark.parametrize(
    ("make", "filename", "header"),
    [
        (lambda: make_image(width=400, height=400)[:300], "cut.jpg", "JPEG"),
        (lambda: make_video(width=320, height=320, seconds=1)[:2000], "cut.mp4", "MP4"),
        (lambda: b"ID3" + bytes(400), "cut.mp3", "MP3"),
    ],
    ids=["jpeg", "mp4", "mp3"],
)
def test_damaged_file_with_a_supported_header_is_rejected_as_unreadable(
    make: Callable[[], bytes], filename: str, header: str
) -> None:
    with pytest.raises(MediaRejected) as rejected:
        validate_media(io.BytesIO(make()), filename=filename)

    (violation,) = rejected.value.violations
    assert (violation.code, violation.message) == (
        "unreadable",
        f"“{filename}” has a {header} header but cannot be read: "
        "the file is damaged or incomplete.",
    )


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: make_image(width=400, height=400, fmt="BMP"), "is a BMP image file"),
        (lambda: make_image(width=400, height=400, fmt="TIFF"), "is a TIFF image file"),
        (lambda: make_audio(fmt="flac"), "is a raw FLAC file"),
        (
            lambda: make_video(width=640, height=640, seconds=2, container="matroska"),
            "is a Matroska / WebM file",
        ),
        (lambda: make_audio(fmt="mp4"), "This MP4 file has no video track"),
    ],
    ids=["bmp", "tiff", "flac", "mkv", "m4a"],
)
def test_real_but_unsupported_format_is_rejected_and_named(
    make: Callable[[], bytes], named: str
) -> None:
    with pytest.raises(MediaRejected) as rejected:
        validate_media(io.BytesIO(make()), filename="upload")

    (violation,) = rejected.value.violations
    assert violation.code == "unsupported_format"
    assert named in violation.message


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
    ],
    ids=["accepted", "rejected", "unreadable"],
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


def _variable_rate_video(*, frame_gaps: tuple[int, ...], time_base: Fraction, frames: int) -> bytes:
    """A MOV whose frames are ``frame_gaps`` ticks apart in turn, like a phone's variable rate."""
    picture = av.VideoFrame.from_image(Image.new("RGB", (640, 640))).reformat(format="yuv420p")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mov") as output:
        stream = output.add_stream("mpeg4", rate=int(1 / time_base))
        stream.width, stream.height, stream.pix_fmt = 640, 640, "yuv420p"
        stream.codec_context.time_base = time_base
        pts = 0
        for index in range(frames):
            picture.pts = pts
            output.mux(stream.encode(picture))
            pts += frame_gaps[index % len(frame_gaps)]
        output.mux(stream.encode(None))
    return buffer.getvalue()


def test_each_kind_describes_its_limits_for_staff():
    assert LIMITS["image"].describe() == (
        "JPEG, PNG, WEBP, GIF or HEIC, under 30 MB, each side 300-6000 px, width/height 0.4-2.5"
    )
    assert LIMITS["audio"].describe() == "MP3 or WAV, at most 15 MB, 2-15 s"
    assert "409,600-2,086,876 pixels, 2-15 s, 24-60 fps" in LIMITS["video"].describe()
