"""Small JPEG previews of likeness assets for the references page: never the original's bytes.

An image is decoded (JPEG at a reduced scale straight from the decoder) and shrunk; a video
gives its first frame (its poster). The result is a new JPEG of at most ``size`` pixels a side,
re-encoded by Pillow without any of the original's metadata (no EXIF, no location).
"""

from __future__ import annotations

import io
import logging
from typing import BinaryIO, cast

import av
from django.core.cache import cache
from PIL import Image, ImageOps

from assets.media import FORMATS  # importing assets.media also registers the HEIF opener
from assets.models import Asset, AssetKind

logger = logging.getLogger(__name__)

JPEG_QUALITY = 80
_PILLOW_FORMATS = {fmt.content_type: fmt.pillow for fmt in FORMATS.values() if fmt.pillow}
# FFmpeg's demuxer for both MP4 and QuickTime; named, so it is never guessed from a file name.
_VIDEO_DEMUXER = "mov"
# What reading a damaged or vanished file raises (decoders, storage, a video without frames).
_UNREADABLE = (OSError, ValueError, StopIteration, av.FFmpegError, Image.DecompressionBombError)
# What reading a damaged or vanished file raises (decoders, storage, a video without frames).
_UNREADABLE = (OSError, ValueError, StopIteration, av.FFmpegError, Image.DecompressionBombError)


class NoThumbnail(Exception):
    """The asset has no picture to show (audio), or its file could not be read."""


# Previews are kept this long in the cache (keyed by the file's hash: a new file, a new key).
CACHE_SECONDS = 24 * 3600


def cached_thumbnail(asset: Asset, *, size: int) -> bytes | None:
    """``thumbnail_jpeg`` of ``asset``, from the cache when it is there; None (logged) when the
    file makes no preview (the caller shows its kind's icon instead)."""
    key = f"thumbnail:{asset.pk}:{asset.sha256}:{size}"
    data = cache.get(key)
    if data is None:
        try:
            data = thumbnail_jpeg(asset, size=size)
        except NoThumbnail as exc:
            logger.warning("no preview of asset %s: %s", asset.pk, exc)
            return None
        cache.set(key, data, CACHE_SECONDS)
    return cast(bytes, data)


def thumbnail_jpeg(asset: Asset, *, size: int) -> bytes:
    """A JPEG of ``asset`` (an image, or a video's first frame) within ``size`` x ``size``."""
    if asset.kind not in (AssetKind.IMAGE, AssetKind.VIDEO):
        raise NoThumbnail(f"{asset.get_kind_display()} has no picture.")
    try:
        with asset.file.open("rb") as stored:
            fileobj = cast(BinaryIO, stored)
            if asset.kind == AssetKind.IMAGE:
                picture = _image(fileobj, content_type=asset.content_type, size=size)
            else:
                picture = _poster(fileobj)
            picture.thumbnail((size, size))
            return _jpeg(picture)
    except _UNREADABLE as exc:
        raise NoThumbnail(f"{asset} could not be read: {exc}") from exc


def _image(fileobj: BinaryIO, *, content_type: str, size: int) -> Image.Image:
    pillow_format = _PILLOW_FORMATS.get(content_type)
    if pillow_format is None:
        raise NoThumbnail(f"No picture format for {content_type}.")
    image = Image.open(fileobj, formats=[pillow_format])
    # JPEG decodes at 1/2, 1/4 or 1/8 scale when asked: a 6000x4000 portrait never decodes whole.
    image.draft("RGB", (size, size))
    # Turned as the camera meant (EXIF orientation), before the metadata is left behind.
    return ImageOps.exif_transpose(image)


def _poster(fileobj: BinaryIO) -> Image.Image:
    with av.open(fileobj, mode="r", format=_VIDEO_DEMUXER, metadata_errors="ignore") as container:
        frame = next(container.decode(video=0))
        return frame.to_image()


def _jpeg(picture: Image.Image) -> bytes:
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        picture = flat
    elif picture.mode != "RGB":
        picture = picture.convert("RGB")
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
