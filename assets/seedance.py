"""How an asset's reference goes into a Seedance 2.0 request's ``content`` array.

Pure functions, no database. The shapes and limits are the provider's (docs/upstream.md §10):
``asset://<Id>`` goes in the ``url`` of an ``image_url``, ``video_url`` or
``audio_url`` item with the role ``reference_image``, ``reference_video`` or ``reference_audio``;
one request takes 1 to 9 reference images, at most 3 videos and at most 3 audio clips; audio
cannot be the only reference; and items go in the strict order text, images, videos, audio.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

# Each asset kind: the item's type (also the key holding the url) and its role.
ITEM_SHAPES = {
    "image": ("image_url", "reference_image"),
    "video": ("video_url", "reference_video"),
    "audio": ("audio_url", "reference_audio"),
}
# At most this many references of each kind in one request, in the documented order.
MAX_REFERENCES = {"image": 9, "video": 3, "audio": 3}
_WORDS = {
    "image": "reference images",
    "video": "reference videos",
    "audio": "reference audio clips",
}


def content_item(kind: str, reference: str) -> dict[str, Any]:
    """The content item of one ``asset://<Id>`` of an asset of ``kind``."""
    item_type, role = ITEM_SHAPES[kind]
    return {"type": item_type, item_type: {"url": reference}, "role": role}


def content_array(references: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """The items of ``(kind, reference)`` pairs in the documented order: images, videos, audio.

    Within a kind the given order is kept: the prompt calls them @image1, @image2… in that order.
    """
    pairs = list(references)
    order = list(MAX_REFERENCES)
    ordered = sorted(pairs, key=lambda pair: order.index(pair[0]))
    return [content_item(kind, reference) for kind, reference in ordered]


def selection_problems(kinds: Iterable[str]) -> list[str]:
    """Why references of these kinds cannot make one request's array (empty: they can)."""
    counts = Counter(kinds)
    problems = [
        f"At most {limit} {_WORDS[kind]} go in one Seedance 2.0 request; "
        f"{counts[kind]} are selected."
        for kind, limit in MAX_REFERENCES.items()
        if counts[kind] > limit
    ]
    if not counts:
        problems.append("Select at least one asset.")
    elif counts["audio"] and not (counts["image"] or counts["video"]):
        problems.append(
            "Audio cannot be the only reference of a Seedance 2.0 request: add an image or a video."
        )
    return problems
