"""Real media files made on the fly with Pillow and PyAV, never committed as binary fixtures.

Used by the demo data, by the sandbox's phone page (a tester picks whom the file shows) and by the
tests. A ``face`` writes the sandbox's identity marker (see ``sandbox.faces``). Generation is fast
because every video frame is the same picture; keep sizes small in tests anyway.

Formats beyond the accepted ones (BMP images, Matroska videos, FLAC or M4A audio) can be made too,
so tests can show that real but unsupported files are refused.
"""

from __future__ import annotations

import hashlib
import io
import math
from array import array
from fractions import Fraction
from typing import cast

import av
from PIL import ExifTags, Image, ImageDraw, ImageFont
from pillow_heif import register_heif_opener

from sandbox.faces import FACE_MARKER_PREFIX

# Also registers the HEIF writer; harmless when AssetsConfig.ready() already did.
register_heif_opener()

_PILLOW_FORMATS = {"JPG": "JPEG", "HEIC": "HEIF"}
_AUDIO_CODECS = {"wav": "pcm_s16le", "mp3": "libmp3lame", "flac": "flac", "mp4": "aac"}
_TONE_HZ = 440


def make_image(
    *,
    width: int = 1200,
    height: int = 1600,
    fmt: str = "JPEG",
    face: str | None = None,
    label: str = "",
) -> bytes:
    """A portrait-like picture: JPEG, PNG, WEBP, GIF, HEIC, or any other format Pillow writes.

    With ``face``, the marker goes into EXIF ImageDescription or, for a GIF (which has no EXIF),
    into its comment. Identical arguments give identical bytes: vary ``label`` for distinct files.
    """
    pillow_format = _PILLOW_FORMATS.get(fmt.upper(), fmt.upper())
    options: dict[str, object] = {}
    if face is not None:
        marker = FACE_MARKER_PREFIX + face
        exif = Image.Exif()
        exif[ExifTags.Base.ImageDescription] = marker
        options = {"comment": marker} if pillow_format == "GIF" else {"exif": exif}
    buffer = io.BytesIO()
    _portrait(width, height, face=face, label=label).save(buffer, pillow_format, **options)
    return buffer.getvalue()


def make_video(
    *,
    width: int = 720,
    height: int = 1280,
    seconds: float = 3.0,
    fps: int | Fraction = 25,
    container: str = "mp4",
    face: str | None = None,
    codec: str | None = None,
) -> bytes:
    """``round(seconds * fps)`` frames of the portrait, in any container FFmpeg writes.

    ``codec`` defaults to H.264 (libx264, fastest preset); ``"mpeg4"`` also works. 4:2:0 video
    needs an even width and height. With ``face``, the marker is the container's ``comment``.
    """
    codec = codec or "libx264"
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        if face is not None:
            output.metadata["comment"] = FACE_MARKER_PREFIX + face
        options = {"preset": "ultrafast"} if codec == "libx264" else {}
        # The codec is only known at run time, so the type checker cannot tell the stream's kind.
        stream = cast(av.VideoStream, output.add_stream(codec, rate=fps, options=options))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        picture = _portrait(width, height, face=face, label=face or "")
        frame = av.VideoFrame.from_image(picture).reformat(format="yuv420p")
        for index in range(round(seconds * fps)):
            frame.pts = index  # in the stream's time base, 1/fps
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))  # flush the encoder's delayed frames
    return buffer.getvalue()


def make_audio(*, seconds: float = 3.0, fmt: str = "wav", sample_rate: int = 16000) -> bytes:
    """A mono 440 Hz tone: ``wav`` (16-bit PCM), ``mp3`` (LAME), ``flac``, ``mp4`` (AAC, as M4A)."""
    count = round(seconds * sample_rate)
    # The tone repeats exactly every `period` samples: compute one period, then repeat it.
    period = sample_rate // math.gcd(sample_rate, _TONE_HZ)
    step = 2 * math.pi * _TONE_HZ / sample_rate
    cycle = array("h", (round(8000 * math.sin(step * i)) for i in range(period)))
    samples = (cycle * (count // period + 1))[:count]
    frame = av.AudioFrame(format="s16", layout="mono", samples=count)
    frame.planes[0].update(samples.tobytes())
    frame.sample_rate, frame.pts = sample_rate, 0
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=fmt) as output:
        stream = cast(
            av.AudioStream, output.add_stream(_AUDIO_CODECS[fmt], rate=sample_rate, layout="mono")
        )
        output.mux(stream.encode(frame))  # PyAV cuts the frame to the encoder's frame size
        output.mux(stream.encode(None))
    return buffer.getvalue()


def _portrait(width: int, height: int, *, face: str | None, label: str) -> Image.Image:
    """A background coloured after the identity, an oval face, and the label underneath."""
    seed = hashlib.sha256((face or "").encode()).digest()
    background = (64 + seed[0] // 2, 64 + seed[1] // 2, 64 + seed[2] // 2)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    draw.ellipse(
        (width * 0.3, height * 0.2, width * 0.7, height * 0.65),
        fill=(236, 200, 170),
        outline=(90, 60, 40),
        width=max(1, min(width, height) // 100),
    )
    if label:
        font = ImageFont.load_default(size=max(10, min(width, height) // 12))
        draw.text((width / 2, height * 0.8), label, fill="white", font=font, anchor="mm")
    return image
