"""The upstream's limits (one table, ``LIMITS``), the measurements a file is judged by, and the
sentences a staff user reads when a file breaks them (docs: upstream-api.md, "Assets")."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

# The upstream does not say which megabyte it means; the decimal one is the smaller, so a file
# accepted here is never refused upstream for its size.
MB = 1_000_000

Number = float | Fraction


@dataclass(frozen=True)
class MediaFormat:
    """An accepted format: its name as people write it and its content type (the extension a
    file of that type is stored under is ``portal.private_files``' to say)."""

    name: str
    content_type: str
    pillow: str = ""  # Pillow's name for it, for images


# The formats of the upstream's limits table, keyed by the code ``MediaInfo.format`` holds.
FORMATS: dict[str, MediaFormat] = {
    "jpeg": MediaFormat("JPEG", "image/jpeg", "JPEG"),
    "png": MediaFormat("PNG", "image/png", "PNG"),
    "webp": MediaFormat("WebP", "image/webp", "WEBP"),
    "gif": MediaFormat("GIF", "image/gif", "GIF"),
    "heic": MediaFormat("HEIC", "image/heic", "HEIF"),
    "mp4": MediaFormat("MP4", "video/mp4"),
    "mov": MediaFormat("MOV", "video/quicktime"),
    "mp3": MediaFormat("MP3", "audio/mpeg"),
    "wav": MediaFormat("WAV", "audio/wav"),
}


@dataclass(frozen=True)
class MediaInfo:
    """What was measured in a file; ``kind`` is an ``AssetKind`` value, ``format`` a key of
    ``FORMATS``."""

    kind: str
    format: str
    content_type: str
    size_bytes: int
    sha256: str
    width: int | None = None
    height: int | None = None
    duration_seconds: float | None = None
    fps: float | None = None


@dataclass(frozen=True)
class LimitViolation:
    """One broken rule: a stable machine ``code`` and a sentence a staff user understands."""

    code: str
    message: str


class MediaRejected(Exception):
    """The file cannot be sent upstream; ``violations`` lists every reason."""

    def __init__(self, violations: list[LimitViolation]) -> None:
        self.violations = violations
        super().__init__(" ".join(v.message for v in violations))


class LocationNotRemovable(Exception):
    """``strip_location`` could not walk the file's metadata, so cannot promise it is gone."""


@dataclass(frozen=True)
class Range:
    """An inclusive range: both ends are accepted."""

    low: Number
    high: Number

    def __contains__(self, value: Number) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class KindLimits:
    """The upstream's rules for one kind of asset; ``None`` means the kind has no such rule."""

    formats: tuple[str, ...]  # keys of FORMATS
    max_bytes: int
    max_bytes_inclusive: bool  # images must be *smaller than* 30 MB, videos *at most* 50 MB
    side_px: Range | None = None
    aspect_ratio: Range | None = None  # width / height
    pixels: Range | None = None  # width * height
    duration_seconds: Range | None = None
    fps: Range | None = None

    def describe(self) -> str:
        """The rules in one line for staff, e.g. "MP3 or WAV, at most 15 MB, 2-15 s"."""
        size = "at most" if self.max_bytes_inclusive else "under"
        parts = [_formats(self), f"{size} {_num(self.max_bytes / MB)} MB"]
        if self.side_px:
            parts.append(f"each side {self.side_px.low}-{self.side_px.high} px")
        if self.aspect_ratio:
            low, high = _num(self.aspect_ratio.low), _num(self.aspect_ratio.high)
            parts.append(f"width/height {low}-{high}")
        if self.pixels:
            parts.append(f"{self.pixels.low:,}-{self.pixels.high:,} pixels")
        if self.duration_seconds:
            parts.append(f"{self.duration_seconds.low}-{self.duration_seconds.high} s")
        if self.fps:
            parts.append(f"{self.fps.low}-{self.fps.high} fps")
        return ", ".join(parts)


# The single source of truth, keyed by AssetKind value; the sandbox enforces the same table.
LIMITS: dict[str, KindLimits] = {
    "image": KindLimits(
        formats=("jpeg", "png", "webp", "gif", "heic"),
        max_bytes=30 * MB,
        max_bytes_inclusive=False,
        side_px=Range(300, 6000),
        aspect_ratio=Range(Fraction(2, 5), Fraction(5, 2)),
    ),
    "video": KindLimits(
        formats=("mp4", "mov"),
        max_bytes=50 * MB,
        max_bytes_inclusive=True,
        side_px=Range(300, 6000),
        aspect_ratio=Range(Fraction(2, 5), Fraction(5, 2)),
        pixels=Range(409_600, 2_086_876),
        duration_seconds=Range(2, 15),
        fps=Range(24, 60),
    ),
    "audio": KindLimits(
        formats=("mp3", "wav"),
        max_bytes=15 * MB,
        max_bytes_inclusive=True,
        duration_seconds=Range(2, 15),
    ),
}

# Names of refused formats recognised by their signature, for "is in <name> format".
_REFUSED_NAMES = {
    "avif": "AVIF",
    "3gp": "3GP",
    "m4a": "M4A (MPEG-4 audio)",
    "cr3": "Canon CR3 raw",
    "heif": "HEIF without HEVC",
    "iso": "an unrecognised MPEG-4 family",
}
_PLURALS = {"image": "images", "video": "videos", "audio": "audio"}
_KIND_OF_FORMAT = {fmt: kind for kind, limits in LIMITS.items() for fmt in limits.formats}

_CHUNK_BYTES = 1 << 20  # files are read this much at a time


def check_limits(info: MediaInfo) -> list[LimitViolation]:
    """Every rule of ``LIMITS`` that ``info`` breaks, in table order (empty when acceptable).

    One violation per rule. A measurement a rule needs but ``info`` lacks is reported as
    ``unreadable``. Measured numbers are shown with as many decimals as it takes to see that
    they are outside the limit (15.0004 s, not 15 s).
    """
    limits = LIMITS[info.kind]
    violations: list[LimitViolation] = []

    if info.format not in limits.formats:
        message = (
            f"{_format_name(info.format)} is not accepted for {info.kind}; use {_formats(limits)}."
        )
        violations.append(LimitViolation("unsupported_format", message))

    if too_large := _size_violation(info.kind, info.size_bytes):
        violations.append(too_large)

    if limits.side_px or limits.aspect_ratio or limits.pixels:
        violations += _dimension_violations(info, limits)

    if duration := limits.duration_seconds:
        if info.duration_seconds is None:
            violations.append(_unmeasured(info, "duration"))
        elif info.duration_seconds not in duration:
            code = "too_short" if info.duration_seconds < duration.low else "too_long"
            message = (
                f"The {info.kind} lasts {_outside(info.duration_seconds, duration)} s; "
                f"it must last between {_num(duration.low)} and {_num(duration.high)} s."
            )
            violations.append(LimitViolation(code, message))

    if fps := limits.fps:
        if info.fps is None:
            violations.append(_unmeasured(info, "frame rate"))
        elif info.fps not in fps:
            message = (
                f"The {info.kind} has {_outside(info.fps, fps)} frames per second; "
                f"it must have between {_num(fps.low)} and {_num(fps.high)}."
            )
            violations.append(LimitViolation("fps", message))

    return violations


def _size_violation(kind: str, size: int) -> LimitViolation | None:
    limits = LIMITS[kind]
    inclusive = limits.max_bytes_inclusive
    if size <= limits.max_bytes if inclusive else size < limits.max_bytes:
        return None
    accepted = Range(0, Fraction(limits.max_bytes if inclusive else limits.max_bytes - 1, MB))
    megabytes = _outside(Fraction(size, MB), accepted, decimals=1, strip=False)
    bound = "at most" if inclusive else "smaller than"
    message = (
        f"The file is {size:,} bytes ({megabytes} MB); "
        f"{kind} files must be {bound} {limits.max_bytes // MB} MB."
    )
    return LimitViolation("file_too_large", message)


def _dimension_violations(info: MediaInfo, limits: KindLimits) -> list[LimitViolation]:
    """The side, aspect ratio and pixel count rules."""
    width, height = info.width, info.height
    if not width or not height:
        return [_unmeasured(info, "width and height")]
    violations = []
    dims = f"The {info.kind} is {width} × {height} px"  # noqa: RUF001 (a real multiplication sign)
    if sides := limits.side_px:
        too_small, too_large = min(width, height) < sides.low, max(width, height) > sides.high
        if too_small or too_large:
            code = f"{info.kind}_too_small" if too_small else f"{info.kind}_too_large"
            message = f"{dims}; each side must be between {sides.low} and {sides.high} px."
            violations.append(LimitViolation(code, message))
    ratio = Fraction(width, height)  # exact: 750 by 300 is 2.5, not a float near it
    if (aspect := limits.aspect_ratio) and ratio not in aspect:
        message = (
            f"{dims}, a width/height ratio of {_outside(ratio, aspect)}; "
            f"it must be between {_num(aspect.low)} and {_num(aspect.high)}."
        )
        violations.append(LimitViolation("aspect_ratio", message))
    if (pixels := limits.pixels) and width * height not in pixels:
        message = (
            f"{dims} = {width * height:,} pixels; "
            f"it must have between {pixels.low:,} and {pixels.high:,} pixels."
        )
        violations.append(LimitViolation("pixel_count", message))
    return violations


def _unmeasured(info: MediaInfo, what: str) -> LimitViolation:
    return LimitViolation("unreadable", f"The {info.kind}'s {what} could not be measured.")


def _format_name(fmt: str) -> str:
    return FORMATS[fmt].name if fmt in FORMATS else _REFUSED_NAMES.get(fmt, fmt.upper())


def _formats(limits: KindLimits) -> str:
    """The kind's formats for a sentence: "JPEG, PNG, WebP, GIF or HEIC"."""
    names = [FORMATS[fmt].name for fmt in limits.formats]
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


def _num(value: Number) -> str:
    """A number for a message: at most three decimals, no trailing zeros."""
    return f"{float(value):.3f}".rstrip("0").rstrip(".")


def _outside(value: Number, accepted: Range, *, decimals: int = 3, strip: bool = True) -> str:
    """``value``, known to be outside ``accepted``, with the fewest decimals (at least
    ``decimals``) that still show it outside: 0.3996 next to a 0.4 limit, never "0.4"."""
    shown = ""
    for places in range(decimals, 10):
        shown = f"{float(value):.{places}f}"
        if strip and "." in shown:
            shown = shown.rstrip("0").rstrip(".")
        if Fraction(shown) not in accepted:
            break
    return shown
