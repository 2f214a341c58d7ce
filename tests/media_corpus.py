"""Media files for the tests, made in the test run with Pillow, PyAV and pillow-heif.

Every file is real and deterministic; nothing binary is committed. ``sandbox.samples`` makes the
well-formed pictures, videos and sounds; this module adds what a validator must get right:

* ``AROUND_LIMITS``: real files at and just past every limit of the upstream's table, each with
  the violation codes ``assets.media.validate_media`` must report (none: accepted);
* ``DAMAGED``: files cut short, zeroed or corrupted, each a defect that once passed or crashed
  the validator; all must be refused as ``unreadable``;
* ``REFUSED_FORMATS``: real formats close to the accepted ones (3GP, AVIF, M4A, BMP, ...);
* metadata traps, files carrying location metadata, pictures with faces the OpenCV cascade
  finds, and ``seed``: one small good file per accepted format, to mutate.

A ``Sample`` names its file with the extension its format usually has, so a test can upload it.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import cast

import av
from PIL import ExifTags, Image, ImageDraw, ImageFilter

from assets.media import LIMITS
from sandbox.samples import make_audio, make_image, make_video

# A place the location metadata points to (the Eiffel tower), as ISO 6709 and as EXIF degrees.
LOCATION_ISO6709 = "+48.8584+002.2945/"
LOCATION_MARKERS = (b"48.8584", b"GPSLatitude", b"Paris")
XMP_WITH_LOCATION = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    b'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
    b' exif:GPSLatitude="48,51.504N" exif:GPSLongitude="2,17.67E" photoshop:City="Paris"/>'
    b"</rdf:RDF></x:xmpmeta>"
)


@dataclass(frozen=True)
class Sample:
    """A file to validate: ``codes`` are the violations it must get (empty: accepted)."""

    name: str
    make: Callable[[], bytes] = field(repr=False)
    codes: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.name


# --- Editing real files -------------------------------------------------------------------------


def resave(data: bytes, fmt: str, **options: object) -> bytes:
    """The picture in ``data`` saved again in Pillow format ``fmt`` with ``options``."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).save(buffer, fmt, **options)
    return buffer.getvalue()


def cut(data: bytes, fraction: float = 0.5) -> bytes:
    return data[: int(len(data) * fraction)]


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """The ISO base media boxes between ``start`` and ``end``: (type, offset, size)."""
    end = len(data) if end is None else end
    found, offset = [], start
    while offset + 8 <= end:
        size, box_type = struct.unpack(">I4s", data[offset : offset + 8])
        if size < 8:
            break
        found.append((box_type, offset, size))
        offset += size
    return found


def pad_to(data: bytes, size: int) -> bytes:
    """``data`` grown to exactly ``size`` bytes with padding every reader skips: a ``free`` box
    after an ISO file, a ``JUNK`` chunk in a RIFF file, zeros after a picture's end marker."""
    missing = size - len(data)
    if data[4:8] == b"ftyp":
        return data + missing.to_bytes(4, "big") + b"free" + bytes(missing - 8)
    if data.startswith(b"RIFF"):
        chunk_size = missing - 8
        padded = data + b"JUNK" + chunk_size.to_bytes(4, "little") + bytes(chunk_size)
        return b"RIFF" + (len(padded) - 8).to_bytes(4, "little") + padded[8:]
    return data + bytes(missing)


def faststart(mp4: bytes) -> bytes:
    """The MP4 with its index (moov) moved before the samples, as streaming encoders write it."""
    top = boxes(mp4)
    _, moov_offset, moov_size = next(box for box in top if box[0] == b"moov")
    moov = bytearray(mp4[moov_offset : moov_offset + moov_size])
    _shift_chunk_offsets(moov, moov_size, 8, len(moov))
    ftyp_end = top[0][1] + top[0][2]
    rest = mp4[ftyp_end:moov_offset] + mp4[moov_offset + moov_size :]
    return mp4[:ftyp_end] + bytes(moov) + rest


def _shift_chunk_offsets(moov: bytearray, delta: int, start: int, end: int) -> None:
    for box_type, offset, size in boxes(bytes(moov), start, end):
        if box_type in (b"trak", b"mdia", b"minf", b"stbl"):
            _shift_chunk_offsets(moov, delta, offset + 8, offset + size)
        elif box_type == b"stco":
            (count,) = struct.unpack(">I", moov[offset + 12 : offset + 16])
            for entry in range(offset + 16, offset + 16 + 4 * count, 4):
                (value,) = struct.unpack(">I", moov[entry : entry + 4])
                moov[entry : entry + 4] = struct.pack(">I", value + delta)


def png_chunk(chunk_type: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(chunk_type + data).to_bytes(4, "big")
    return len(data).to_bytes(4, "big") + chunk_type + data + crc


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk of a PNG."""
    chunks, offset = [], 8
    while offset < len(png):
        length, chunk_type = struct.unpack(">I4s", png[offset : offset + 8])
        chunks.append((chunk_type, png[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return chunks


def _replace_once(data: bytes, old: bytes, new: bytes, *, after: bytes = b"") -> bytes:
    start = data.index(old, data.index(after) if after else 0)
    return data[:start] + new + data[start + len(old) :]


# --- Good files at and around the limits --------------------------------------------------------


def image(width: int, height: int, fmt: str = "JPEG") -> Callable[[], bytes]:
    return lambda: make_image(width=width, height=height, fmt=fmt)


def video(
    width: int = 640,
    height: int = 640,
    seconds: float = 2,
    fps: int | Fraction = 24,
    container: str = "mp4",
) -> Callable[[], bytes]:
    return lambda: make_video(
        width=width, height=height, seconds=seconds, fps=fps, container=container
    )


def audio(seconds: float, fmt: str = "wav", sample_rate: int = 16000) -> Callable[[], bytes]:
    return lambda: make_audio(seconds=seconds, fmt=fmt, sample_rate=sample_rate)


def trimmed(start: float, length: float) -> Callable[[], bytes]:
    """A 4 s MP4 whose edit list shows ``length`` seconds from ``start``, as a phone trims a
    video without encoding it again: the frames outside stay in the file, unshown."""

    def make() -> bytes:
        data = bytearray(make_video(width=640, height=640, seconds=4, fps=24))
        edit = data.index(b"elst") + 12  # the first entry of a version 0 edit list
        media = data.index(b"mdhd")
        (media_timescale,) = struct.unpack(">I", data[media + 16 : media + 20])
        (movie_timescale,) = struct.unpack(">I", data[data.index(b"mvhd") + 16 :][:4])
        _, media_time = struct.unpack(">Ii", data[edit : edit + 8])
        data[edit : edit + 8] = struct.pack(
            ">Ii", round(length * movie_timescale), media_time + round(start * media_timescale)
        )
        return bytes(data)

    return make


def padded(make: Callable[[], bytes], size: int) -> Callable[[], bytes]:
    return lambda: pad_to(make(), size)


_IMAGE_MAX = LIMITS["image"].max_bytes
_VIDEO_MAX = LIMITS["video"].max_bytes
_AUDIO_MAX = LIMITS["audio"].max_bytes

AROUND_LIMITS: list[Sample] = [
    # Images: sides 300-6000 px, width/height 0.4-2.5, smaller than 30 MB, five formats.
    Sample("image-300x400.jpg", image(300, 400)),
    Sample("image-299x400.jpg", image(299, 400), ("image_too_small",)),
    Sample("image-6000x2400.jpg", image(6000, 2400)),
    Sample("image-6001x2401.jpg", image(6001, 2401), ("image_too_large",)),
    Sample("image-750x300.png", image(750, 300, "PNG")),
    Sample("image-753x300.png", image(753, 300, "PNG"), ("aspect_ratio",)),
    Sample("image-300x750.gif", image(300, 750, "GIF")),
    Sample("image-999x2500.webp", image(999, 2500, "WEBP"), ("aspect_ratio",)),
    Sample("image-1000x2500.webp", image(1000, 2500, "WEBP")),
    Sample("image-400x600.heic", image(400, 600, "HEIC")),
    Sample("image-200x7000.png", image(200, 7000, "PNG"), ("image_too_small", "aspect_ratio")),
    Sample("image-just-under-30MB.jpg", padded(image(400, 500), _IMAGE_MAX - 1)),
    Sample("image-30MB.jpg", padded(image(400, 500), _IMAGE_MAX), ("file_too_large",)),
    # Video: 2-15 s, 24-60 fps, 409,600-2,086,876 pixels, sides and ratio, at most 50 MB.
    Sample("video-640x640-2s-24fps.mp4", video()),
    Sample("video-480x854-2.5s-30fps.mov", video(480, 854, 2.5, 30, "mov")),
    Sample("video-640x638.mp4", video(640, 638), ("pixel_count",)),
    Sample("video-1102x1892.mp4", video(1102, 1892)),
    Sample("video-1104x1892.mp4", video(1104, 1892), ("pixel_count",)),
    Sample("video-1.9s.mp4", video(seconds=1.9, fps=30), ("too_short",)),
    Sample("video-15s.mp4", video(seconds=15)),
    Sample("video-15.04s.mp4", video(seconds=15.04, fps=25), ("too_long",)),
    Sample("video-23.976fps.mp4", video(fps=Fraction(24000, 1001)), ("fps",)),
    Sample("video-60fps.mov", video(fps=60, container="mov")),
    Sample("video-61fps.mp4", video(fps=61), ("fps",)),
    Sample("video-1020x408.mp4", video(1020, 408)),
    Sample("video-1022x408.mp4", video(1022, 408), ("aspect_ratio",)),
    Sample("video-trimmed-to-2s.mp4", trimmed(1, 2)),
    Sample("video-trimmed-to-1.9s.mp4", trimmed(1, 1.9), ("too_short",)),
    Sample("video-50MB.mp4", padded(video(), _VIDEO_MAX)),
    Sample("video-50MB-and-1-byte.mp4", padded(video(), _VIDEO_MAX + 1), ("file_too_large",)),
    # Audio: 2-15 s, at most 15 MB.
    Sample("audio-2s.wav", audio(2)),
    Sample("audio-1.9s.wav", audio(1.9), ("too_short",)),
    Sample("audio-2s.mp3", audio(2, "mp3")),
    Sample("audio-1.9s.mp3", audio(1.9, "mp3"), ("too_short",)),
    Sample("audio-15s.wav", audio(15, sample_rate=48000)),
    Sample("audio-15.0004s.wav", audio(15.0004, sample_rate=48000), ("too_long",)),
    Sample("audio-15s.mp3", audio(15, "mp3")),
    Sample("audio-15.5s.mp3", audio(15.5, "mp3"), ("too_long",)),
    Sample("audio-15MB.wav", padded(audio(3), _AUDIO_MAX)),
    Sample("audio-15MB-and-1-byte.wav", padded(audio(3), _AUDIO_MAX + 1), ("file_too_large",)),
]


# --- Damaged files ------------------------------------------------------------------------------


def jpeg_header_without_pixels() -> bytes:
    """A JPEG that ends right after its scan header: every table, no picture."""
    data = make_image(width=400, height=500)
    scan = data.index(b"\xff\xda")
    (length,) = struct.unpack(">H", data[scan + 2 : scan + 4])
    return data[: scan + 2 + length]


def png_with_corrupt_pixels() -> bytes:
    """A PNG whose compressed pixel data is scrambled in the middle, with valid CRCs."""
    rng = random.Random(8)
    chunks = []
    for chunk_type, data in png_chunks(make_image(width=400, height=500, fmt="PNG", label="x")):
        if chunk_type == b"IDAT":
            middle = len(data) // 2
            data = data[:middle] + rng.randbytes(64) + data[middle + 64 :]
        chunks.append(png_chunk(chunk_type, data))
    return b"\x89PNG\r\n\x1a\n" + b"".join(chunks)


def png_declaring(width: int, height: int, *, pixel_bytes: int = 100) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` RGB pixels but holds a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(bytes(10_000))[:pixel_bytes]
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


def mp4_with_data_cut_in_half() -> bytes:
    """An MP4 whose index is whole (it comes first) but whose samples stop half way."""
    return cut(faststart(make_video(width=640, height=640, seconds=3, fps=24)))


def mp4_with_zeroed_samples() -> bytes:
    data = bytearray(make_video(width=640, height=640, seconds=3, fps=24))
    for box_type, offset, size in boxes(bytes(data)):
        if box_type == b"mdat":
            data[offset + 8 : offset + size] = bytes(size - 8)
    return bytes(data)


def mp3_sync_word_then_noise() -> bytes:
    """An MPEG layer III frame header followed by 200 KB of random bytes."""
    return b"\xff\xfb\x90\x64" + random.Random(3).randbytes(200_000)


def mp4_with_unknown_codec() -> bytes:
    """An MP4 whose video sample entry names a codec no decoder knows."""
    data = make_video(width=640, height=640, seconds=2, fps=24)
    return _replace_once(data, b"avc1", b"zzzz", after=b"stsd")


def gif_cut_in_half() -> bytes:
    return cut(make_image(width=400, height=500, fmt="GIF", label="gif"))


def webp_cut_in_half() -> bytes:
    return cut(make_image(width=400, height=500, fmt="WEBP", label="webp"))


def heic_cut_in_half() -> bytes:
    return cut(make_image(width=400, height=600, fmt="HEIC", label="heic"))


def mov_cut_in_half() -> bytes:
    return cut(make_video(width=640, height=640, seconds=3, fps=24, container="mov"))


def wav_cut_in_half() -> bytes:
    return cut(make_audio(seconds=4))


def mp3_cut_in_half() -> bytes:
    """A 4 s MP3 whose frames stop half way; its header still implies the whole length."""
    data = make_audio(seconds=4, fmt="mp3")
    return data[: len(data) // 2 + 7]  # mid-frame


def bmp_with_unknown_compression() -> bytes:
    data = bytearray(make_image(width=400, height=400, fmt="BMP"))
    data[30:34] = struct.pack("<I", 9)
    return bytes(data)


def ico_with_broken_directory() -> bytes:
    data = bytearray(make_image(width=64, height=64, fmt="ICO"))
    data[18], data[22], data[34] = 72, 225, 244
    return bytes(data)


def jpeg2000_cut() -> bytes:
    return make_image(width=400, height=400, fmt="JPEG2000")[:60]


DAMAGED: list[Sample] = [
    Sample("empty.jpg", lambda: b"", ("unreadable",)),
    Sample("header-without-pixels.jpg", jpeg_header_without_pixels, ("unreadable",)),
    Sample("cut-in-half.jpg", lambda: cut(make_image(width=400, height=500)), ("unreadable",)),
    Sample(
        "cut-in-half.png",
        lambda: cut(make_image(width=400, height=500, fmt="PNG")),
        ("unreadable",),
    ),
    Sample("corrupt-pixels.png", png_with_corrupt_pixels, ("unreadable",)),
    Sample("6000x6000-in-100-bytes.png", lambda: png_declaring(6000, 6000), ("unreadable",)),
    Sample("cut-in-half.gif", gif_cut_in_half, ("unreadable",)),
    Sample("cut-in-half.webp", webp_cut_in_half, ("unreadable",)),
    Sample("cut-in-half.heic", heic_cut_in_half, ("unreadable",)),
    Sample("data-cut-in-half.mp4", mp4_with_data_cut_in_half, ("unreadable",)),
    Sample("zeroed-samples.mp4", mp4_with_zeroed_samples, ("unreadable",)),
    Sample("cut-in-half.mov", mov_cut_in_half, ("unreadable",)),
    Sample("sync-word-then-noise.mp3", mp3_sync_word_then_noise, ("unreadable",)),
    Sample("cut-in-half.mp3", mp3_cut_in_half, ("unreadable",)),
    Sample("cut-in-half.wav", wav_cut_in_half, ("unreadable",)),
    Sample("unknown-codec.mp4", mp4_with_unknown_codec, ("unsupported_format",)),
    Sample("unknown-compression.bmp", bmp_with_unknown_compression, ("unreadable",)),
    Sample("broken-directory.ico", ico_with_broken_directory, ("unreadable",)),
    Sample("cut.jp2", jpeg2000_cut, ("unreadable",)),
]


# --- Formats that are not accepted --------------------------------------------------------------


def encoded_audio(container: str, codec: str, *, seconds: float = 3) -> bytes:
    """Silence in any container and codec FFmpeg writes, e.g. ``ipod``/``aac``: an M4A as
    iTunes and phones' recorders write it (the M4A brand), or ``ogg``/``libopus``."""
    rate = 48000
    buffer = io.BytesIO()
    frame = av.AudioFrame(format="s16", layout="mono", samples=int(seconds * rate))
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate, frame.pts = rate, 0
    with av.open(buffer, mode="w", format=container) as output:
        stream = cast(av.AudioStream, output.add_stream(codec, rate=rate, layout="mono"))
        output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


REFUSED_FORMATS: list[Sample] = [
    Sample("clip.3gp", video(container="3gp"), ("unsupported_format",)),
    Sample(
        "picture.avif",
        lambda: resave(make_image(width=400, height=500), "AVIF"),
        ("unsupported_format",),
    ),
    Sample("voice.m4a", lambda: encoded_audio("ipod", "aac"), ("unsupported_format",)),
    Sample("voice-in-mp4.mp4", lambda: make_audio(fmt="mp4"), ("unsupported_format",)),
    Sample("picture.bmp", image(400, 400, "BMP"), ("unsupported_format",)),
    Sample("picture.tiff", image(400, 400, "TIFF"), ("unsupported_format",)),
    Sample("voice.flac", lambda: make_audio(fmt="flac"), ("unsupported_format",)),
    Sample("clip.mkv", video(container="matroska"), ("unsupported_format",)),
    Sample("voice.ogg", lambda: encoded_audio("ogg", "libopus"), ("unsupported_format",)),
]


# --- Metadata -----------------------------------------------------------------------------------


def wav_with_latin1_title(title: bytes = "Café Müller".encode("latin-1")) -> bytes:
    """A WAV whose LIST/INFO title is Latin-1, as many Windows tools write it (not UTF-8)."""
    data = make_audio(seconds=3)
    text = title + b"\x00"
    if len(text) % 2:
        text += b"\x00"
    info = b"INFO" + b"INAM" + len(text).to_bytes(4, "little") + text
    chunk = b"LIST" + len(info).to_bytes(4, "little") + info
    body = data[12:] + chunk
    return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WAVE" + body


def mp4_with_invalid_utf8_comment() -> bytes:
    data = make_video(width=640, height=640, seconds=2, fps=24, face="XXXX")
    return _replace_once(data, b"sandbox-face:XXXX", b"sandbox-face:\xff\xfe\xfd\xfc")


# --- Location metadata --------------------------------------------------------------------------


def exif_with_location(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "PortalCam"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (48.0, 51.0, 30.24),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (2.0, 17.0, 40.2),
        ExifTags.GPS.GPSAreaInformation: "48.8584 Paris",
    }
    return exif


def image_with_location(fmt: str = "JPEG", *, orientation: int = 1) -> bytes:
    """A picture with GPS in its EXIF and latitude, longitude and city in its XMP."""
    picture = make_image(width=400, height=500, label=fmt)
    exif = exif_with_location(orientation)
    if fmt == "PNG":
        from PIL.PngImagePlugin import PngInfo

        text = PngInfo()
        text.add_itxt("XML:com.adobe.xmp", XMP_WITH_LOCATION.decode())
        return resave(picture, "PNG", exif=exif, pnginfo=text)
    return resave(picture, fmt, exif=exif, xmp=XMP_WITH_LOCATION)


def multi_picture_jpeg_with_location() -> bytes:
    """A multi-picture JPEG (MPO, as phones write a photo with its depth map or preview) whose
    pictures both carry GPS in their EXIF."""
    primary = Image.open(io.BytesIO(make_image(width=400, height=500, label="MPO")))
    second = Image.open(io.BytesIO(make_image(width=200, height=250, label="depth")))
    exif = exif_with_location()
    second.info["exif"] = exif.tobytes()
    buffer = io.BytesIO()
    primary.save(buffer, "MPO", save_all=True, append_images=[second], exif=exif)
    return buffer.getvalue()


def video_with_location(container: str = "mp4", *, apple_keys: bool = False) -> bytes:
    """A video with its location as FFmpeg writes it: MP4 ``loci``, MOV ``©xyz``, or with
    ``apple_keys`` the ``com.apple.quicktime.location.ISO6709`` key an iPhone writes."""
    buffer = io.BytesIO()
    options = {"movflags": "use_metadata_tags"} if apple_keys else {}
    key = "com.apple.quicktime.location.ISO6709" if apple_keys else "location"
    picture = av.VideoFrame.from_image(Image.new("RGB", (640, 640), "gray"))
    frame = picture.reformat(format="yuv420p")
    with av.open(buffer, mode="w", format=container, options=options) as output:
        output.metadata[key] = LOCATION_ISO6709
        stream = cast(av.VideoStream, output.add_stream("libx264", rate=24))
        stream.width, stream.height, stream.pix_fmt = 640, 640, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(48):
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return buffer.getvalue()


# --- Faces --------------------------------------------------------------------------------------


def face_picture(faces: int, *, width: int = 600, height: int = 800, fmt: str = "JPEG") -> bytes:
    """A drawn portrait with ``faces`` frontal faces (brows, eyes, nose, mouth) side by side,
    which OpenCV's frontal face cascade finds; softened like a photograph."""
    picture = Image.new("RGB", (width, height), (90, 110, 140))
    draw = ImageDraw.Draw(picture)
    size = width * (0.5 if faces == 1 else 0.7 / max(faces, 1))
    for index in range(faces):
        _draw_face(draw, width * (index + 0.5) / faces, height * 0.4, size)
    buffer = io.BytesIO()
    picture.filter(ImageFilter.GaussianBlur(3)).save(buffer, fmt)
    return buffer.getvalue()


def _draw_face(draw: ImageDraw.ImageDraw, x: float, y: float, size: float) -> None:
    draw.ellipse((x - size * 0.5, y - size * 0.65, x + size * 0.5, y + size * 0.65), "#e1bea0")
    for side in (-0.2, 0.2):
        eye = x + side * size
        brow = (eye - size * 0.13, y - size * 0.26, eye + size * 0.13, y - size * 0.21)
        draw.rectangle(brow, "#3c281e")
        draw.ellipse(
            (eye - size * 0.1, y - size * 0.16, eye + size * 0.1, y - size * 0.06), "#281e1e"
        )
    nose = [
        (x, y - size * 0.05),
        (x - size * 0.07, y + size * 0.17),
        (x + size * 0.07, y + size * 0.17),
    ]
    draw.polygon(nose, "#c8a082")
    draw.ellipse((x - size * 0.18, y + size * 0.27, x + size * 0.18, y + size * 0.36), "#964646")


# --- Frame timing -------------------------------------------------------------------------------


def variable_rate_video(*, frame_gaps: tuple[int, ...], time_base: Fraction, frames: int) -> bytes:
    """A MOV whose frames are ``frame_gaps`` ticks apart in turn, like a phone's variable rate."""
    picture = av.VideoFrame.from_image(Image.new("RGB", (640, 640))).reformat(format="yuv420p")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mov") as output:
        stream = cast(av.VideoStream, output.add_stream("mpeg4", rate=int(1 / time_base)))
        stream.width, stream.height, stream.pix_fmt = 640, 640, "yuv420p"
        stream.codec_context.time_base = time_base
        pts = 0
        for index in range(frames):
            picture.pts = pts
            output.mux(stream.encode(picture))
            pts += frame_gaps[index % len(frame_gaps)]
        output.mux(stream.encode(None))
    return buffer.getvalue()


# --- Seeds for mutation -------------------------------------------------------------------------

SEED_FORMATS = ("jpeg", "png", "webp", "gif", "heic", "mp4", "mov", "mp3", "wav")


@cache
def seed(fmt: str) -> bytes:
    """A small file of an accepted format that passes every limit, to mutate."""
    if fmt in ("jpeg", "png", "webp", "gif", "heic"):
        return make_image(width=320, height=400, fmt=fmt.upper(), label=fmt)
    if fmt in ("mp4", "mov"):
        return make_video(width=640, height=640, seconds=2, fps=24, container=fmt)
    return make_audio(seconds=2, fmt=fmt)
