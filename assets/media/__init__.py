"""Judge an uploaded file against the upstream's documented limits before it leaves the portal.

A staff user learns at upload time, in plain words, why a file would be refused (docs:
upstream-api.md, "Assets", the limits table). Every input ends in a verdict: a ``MediaInfo`` or
``MediaRejected``, never another exception. The steps go from cheapest to dearest, so a refused
file costs little:

1. **Size**, found by seeking, before a byte is read: a file over its kind's limit is refused
   unread, so a 300 MB upload costs no memory.
2. **Format**, from the first bytes only (signatures; for ISO base media, the ``ftyp`` brands:
   MP4, MOV and HEIC are accepted, 3GP, M4A and AVIF are not), never from the name. FFmpeg is
   always told which demuxer to use, and when it is asked to name a refused format it sees the
   bytes without the upload's name.
3. **Measurements** from the headers (pixels as displayed after the EXIF orientation, duration,
   frame rate) and the SHA-256, read in 1 MiB chunks.
4. **Decoding**, only for a file that passes every limit, so memory stays bounded by the limits
   (at most 6000 x 6000 pixels, 2,086,876 per video frame) and never grows with the file's size:
   JPEG is decoded at 1/8 scale (every coefficient is still read); a PNG's chunks are checked
   against their CRCs and its pixel stream is inflated in 1 MiB steps and counted, never held;
   GIF, WebP and HEIC are decoded; every packet of the audio or video track is read, audio is
   decoded whole and video's first frame and last group of pictures are decoded. A file that is
   cut short, zeroed or otherwise damaged is refused as ``unreadable``.

Metadata never decides: tags that are not valid UTF-8 are ignored. Functions taking a file object
read it from the start and leave it at position 0.

The package: ``limits`` (the table, the measurements, the messages), ``formats`` (sniffing),
``budget`` (what decoding a file would cost, checked before it), ``images``, ``audio_video``,
``probing`` (the steps in order), ``location`` (``strip_location``) and ``faces``.
"""

import pillow_heif

from assets.media.faces import face_precheck
from assets.media.images import header_exif
from assets.media.limits import (
    FORMATS,
    LIMITS,
    MB,
    KindLimits,
    LimitViolation,
    MediaFormat,
    MediaInfo,
    MediaRejected,
    Range,
    check_limits,
)
from assets.media.location import LocationNotRemovable, strip_location
from assets.media.probing import probe_media, sniff_kind, validate_media

# AssetsConfig.ready() registers the HEIC opener as well; doing it here keeps this package usable
# without Django (scripts, the sandbox's sample generator). Registering twice is harmless.
pillow_heif.register_heif_opener()

__all__ = [
    "FORMATS",
    "LIMITS",
    "MB",
    "KindLimits",
    "LimitViolation",
    "LocationNotRemovable",
    "MediaFormat",
    "MediaInfo",
    "MediaRejected",
    "Range",
    "check_limits",
    "face_precheck",
    "header_exif",
    "probe_media",
    "sniff_kind",
    "strip_location",
    "validate_media",
]
