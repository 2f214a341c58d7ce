"""The local face pre-check: a hint for staff before an upload is spent, never a verdict."""

from __future__ import annotations

import threading
from typing import BinaryIO

from django.conf import settings
from PIL import Image, ImageOps

from assets.media.limits import FORMATS, MediaInfo

_FACE_SIDE = 800
_cascades = threading.local()  # a CascadeClassifier is not safe to share between threads


def face_precheck(fileobj: BinaryIO, info: MediaInfo) -> list[str]:
    """Warnings for staff when an accepted image shows no face or several, else ``[]``.

    A hint before an upload is spent, never a verdict: OpenCV's Haar cascade finds frontal faces
    only and is easily fooled, and the upstream's own check decides (``FaceMismatch``). Returns
    ``[]`` for video and audio and when ``settings.MEDIA_FACE_PRECHECK`` is off. ``fileobj`` is
    the file ``validate_media`` measured as ``info``; the cascade looks at it 800 px a side at
    most (a JPEG is also decoded at about that size).
    """
    if info.kind != "image" or not settings.MEDIA_FACE_PRECHECK:
        return []
    try:
        count = _count_faces(fileobj, info)
    finally:
        fileobj.seek(0)
    if count == 1:
        return []
    if count == 0:
        return [
            "No face was found in this picture. The upstream compares the face in every image "
            "with the verified person and refuses a picture without one (FaceMismatch): use a "
            "clear, front-facing portrait."
        ]
    return [
        f"{count} faces were found in this picture. The upstream refuses a picture that shows "
        "several people: use a portrait of the verified person alone."
    ]


def _count_faces(fileobj: BinaryIO, info: MediaInfo) -> int:
    import cv2  # imported on first use: OpenCV is large and only this check needs it
    import numpy

    fileobj.seek(0)
    with Image.open(fileobj, formats=[FORMATS[info.format].pillow]) as image:
        image.draft("L", (_FACE_SIDE, _FACE_SIDE))  # JPEG: decode at a fraction of the size
        picture = ImageOps.exif_transpose(image).convert("L")
    picture.thumbnail((_FACE_SIDE, _FACE_SIDE))
    if not hasattr(_cascades, "face"):
        cascades = cv2.data.haarcascades  # type: ignore[attr-defined]  # missing from the stubs
        _cascades.face = cv2.CascadeClassifier(cascades + "haarcascade_frontalface_default.xml")
    gray = cv2.equalizeHist(numpy.asarray(picture))
    smallest = max(24, min(picture.size) // 12)
    faces = _cascades.face.detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(smallest, smallest)
    )
    return len(faces)
