"""The sandbox's deterministic stand-in for the upstream's face matching.

The upstream compares the face in an uploaded asset with the verified person and refuses a
mismatch or several faces (``FaceMismatch``). The sandbox cannot see faces, so files say whom
they show with a text marker, ``sandbox-face:<identity>``:

* images: EXIF ImageDescription (tag 0x010E); GIF has no EXIF, so its comment extension;
* videos: the container's ``comment`` metadata (MP4 and MOV);
* audio shows no face.

The identity ``crowd`` means several faces. A file without a marker returns ``None``, which the
sandbox treats as showing the verified person, so ordinary test files pass; a marker naming
anyone else (a demo identity or not) is a mismatch. ``sandbox.samples`` writes these markers.
"""

from __future__ import annotations

from typing import BinaryIO

import av
from PIL import ExifTags, Image

from assets.media import header_exif

FACE_MARKER_PREFIX = "sandbox-face:"
MULTIPLE_FACES = "crowd"
MAX_IDENTITY_LENGTH = 64

IDENTITY_DESCRIPTIONS: dict[str, str] = {
    "ada": "Ada, a demo talent: verify as ada, then upload files marked ada.",
    "grace": "Grace, another person: her files are refused for anyone else's group.",
    "linus": "Linus, a third person, for a second verified talent in the demo.",
    MULTIPLE_FACES: "Several faces in one file: refused in every group, as upstream.",
}
IDENTITIES: tuple[str, ...] = tuple(IDENTITY_DESCRIPTIONS)


def face_identity_of(fileobj: BinaryIO, *, kind: str) -> str | None:
    """The identity a file's marker names, or ``None`` when it carries no marker.

    ``kind`` is an ``AssetKind`` value. The file must be readable media of that kind (run
    ``assets.media.validate_media`` first): decoding errors propagate. Only headers are read and
    the file object is left at position 0.
    """
    if kind == "audio":
        return None
    fileobj.seek(0)
    try:
        text = _image_marker(fileobj) if kind == "image" else _video_marker(fileobj)
    finally:
        fileobj.seek(0)
    if text is None or not text.startswith(FACE_MARKER_PREFIX):
        return None
    # Identities are stored in 64-character columns; a longer marker names the same person.
    return text.removeprefix(FACE_MARKER_PREFIX).strip()[:MAX_IDENTITY_LENGTH] or None


def _image_marker(fileobj: BinaryIO) -> str | None:
    with Image.open(fileobj) as image:
        value = header_exif(image).get(ExifTags.Base.ImageDescription) or image.info.get("comment")
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _video_marker(fileobj: BinaryIO) -> str | None:
    with av.open(fileobj, mode="r") as container:
        return container.metadata.get("comment")
