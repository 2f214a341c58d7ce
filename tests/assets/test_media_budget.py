"""Decoding with a budget (issue 13): files whose decoding would cost too much are refused from
their structure, before any decoder runs; animations within the budget are still decoded."""

from __future__ import annotations

import io
import struct
import tracemalloc
from collections.abc import Iterator

import pytest
from PIL import Image

from assets.media import MediaRejected, audio_video, images, validate_media
from assets.media.budget import MAX_DECODE_PIXELS, MAX_FRAMES, MAX_VIDEO_FRAMES
from sandbox.hostile import apng_of_pixels, gif_of_pixels, webp_of_pixels
from sandbox.samples import make_video


@pytest.fixture
def decoders(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the files each decoder entry point was given (it still runs)."""
    calls: list[str] = []
    decode_image, open_av = images._decode_image, audio_video._open_av

    def image_spy(fileobj, info):  # type: ignore[no-untyped-def]
        calls.append(f"image {info.format}")
        return decode_image(fileobj, info)

    def av_spy(fileobj, fmt):  # type: ignore[no-untyped-def]
        calls.append(f"av {fmt}")
        return open_av(fileobj, fmt)

    monkeypatch.setattr(images, "_decode_image", image_spy)
    monkeypatch.setattr(audio_video, "_open_av", av_spy)
    yield calls


def refusal(data: bytes, filename: str) -> list[tuple[str, str]]:
    with pytest.raises(MediaRejected) as refused:
        validate_media(io.BytesIO(data), filename=filename)
    return [(v.code, v.message) for v in refused.value.violations]


@pytest.mark.parametrize(
    ("filename", "make", "frames"),
    [
        ("animation.gif", gif_of_pixels, 300),
        ("animation.png", apng_of_pixels, 300),
        ("animation.webp", webp_of_pixels, 300),
    ],
)
def test_an_animation_that_would_paint_too_many_pixels_is_refused_before_decoding(
    decoders: list[str], filename, make, frames
) -> None:
    data = make(frames)  # a 6000x6000 canvas, one-pixel frames: a few kilobytes
    tracemalloc.start()
    try:
        reasons = refusal(data, filename)
        python_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert reasons == [
        (
            "decode_budget",
            f"“{filename}” has 300 frames of 6000×6000: 10,800,000,000 pixels to decode, "  # noqa: RUF001
            f"over the limit of {MAX_DECODE_PIXELS:,} pixels to decode.",
        )
    ]
    assert decoders == []  # refused from the structure: no decoder was given the file
    assert python_peak < 2 * len(data) + 1_000_000


def test_a_gif_of_more_frames_than_any_animation_is_refused_without_counting_them_all(
    decoders: list[str],
) -> None:
    data = gif_of_pixels(3 * MAX_FRAMES, side=300)  # 300x300: within the pixel budget

    assert refusal(data, "many.gif") == [
        (
            "decode_budget",
            f"“many.gif” has more than {MAX_FRAMES:,} frames: over the limit of "
            f"{MAX_FRAMES:,} frames the portal decodes in one GIF file.",
        )
    ]
    assert decoders == []


def test_a_gif_frame_that_overflows_its_canvas_counts_as_the_picture_s_size(
    decoders: list[str],
) -> None:
    # A 400x400 canvas whose second frame is 20000 px wide: players grow the canvas to hold it.
    data = bytearray(gif_of_pixels(2, side=400))
    second = data.index(b"\x2c", data.index(b"\x2c") + 1)
    data[second + 5 : second + 7] = struct.pack("<H", 20000)

    assert refusal(bytes(data), "wide.gif") == [
        (
            "image_too_large",
            "The image is 20000 × 400 px; each side must be between 300 and 6000 px.",  # noqa: RUF001
        ),
        (
            "aspect_ratio",
            "The image is 20000 × 400 px, a width/height ratio of 50; "  # noqa: RUF001
            "it must be between 0.4 and 2.5.",
        ),
    ]
    assert decoders == []


def test_an_animation_within_the_budget_is_decoded_frame_by_frame_and_accepted(
    decoders: list[str],
) -> None:
    frames = [Image.new("L", (600, 800), shade) for shade in (0, 80, 160, 240)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)

    info = validate_media(io.BytesIO(buffer.getvalue()), filename="loop.gif")

    assert (info.format, info.width, info.height) == ("gif", 600, 800)
    assert decoders == ["image gif"]


def test_a_gif_whose_later_frame_is_cut_short_is_still_unreadable() -> None:
    frames = [Image.effect_noise((400, 500), 64 + 32 * i) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()

    reasons = refusal(data[: len(data) - len(data) // 6], "cut.gif")

    assert [code for code, _ in reasons] == ["unreadable"]
    assert "“cut.gif” cannot be read as GIF" in reasons[0][1]


def test_a_video_too_large_to_decode_is_refused_before_ffmpeg_opens_it(
    decoders: list[str],
) -> None:
    data = make_video(width=2400, height=1200, seconds=0.1, fps=24)  # 2,880,000 pixels a frame

    assert refusal(data, "wide.mp4") == [
        (
            "pixel_count",
            "The video is 2400 × 1200 px = 2,880,000 pixels; "  # noqa: RUF001
            "it must have between 409,600 and 2,086,876 pixels.",
        )
    ]
    assert decoders == []


def test_a_video_of_more_frames_than_15_s_at_60_fps_is_refused_before_ffmpeg_opens_it(
    decoders: list[str],
) -> None:
    data = make_video(width=64, height=64, seconds=(MAX_VIDEO_FRAMES + 1) / 60, fps=60)

    assert refusal(data, "long.mp4") == [
        (
            "decode_budget",
            f"“long.mp4” has {MAX_VIDEO_FRAMES + 1:,} frames: over the limit of "
            f"{MAX_VIDEO_FRAMES:,} frames the portal decodes in one MP4 file.",
        )
    ]
    assert decoders == []


def test_an_animated_webp_within_the_budget_is_decoded_and_a_damaged_one_refused(
    decoders: list[str],
) -> None:
    frames = [Image.new("RGB", (600, 800), (shade, 40, 90)) for shade in (0, 80, 160, 240)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    data = buffer.getvalue()

    # The last frame's VP8 start code zeroed: the file's structure is whole, that frame is not.
    start = data.rindex(b"\x9d\x01\x2a")
    damaged = data[:start] + bytes(3) + data[start + 3 :]

    info = validate_media(io.BytesIO(data), filename="loop.webp")
    reasons = refusal(damaged, "damaged.webp")

    assert (info.format, info.width, info.height) == ("webp", 600, 800)
    assert reasons == [
        ("unreadable", "“damaged.webp” cannot be read as WebP: the file is damaged or incomplete.")
    ]
    assert decoders[0] == "image webp"  # the whole one, frame by frame
