"""Benchmark 2: ``assets.media.validate_media`` on full-size files, as the admin's upload form
runs it.

The files are real media made once by ``sandbox.samples`` into the run's temporary folder: a
4000x3000 JPEG, a 1080x1920 15 s H.264 MP4 at 25 fps and a 15 s MP3. Each is validated
``REPEATS`` times from an open file; the median counts.

Flat generated pictures compress to a fraction of a real phone file's size, and validation reads
and hashes every byte, so the JPEG and the MP4 are measured a second time padded to the upstream's
size limits (bytes after a JPEG's end marker and an MP4 ``free`` box are ignored by every reader):
the slowest files the admin can accept.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from benchmarks.results import Result

NAME = "media validation"
REPEATS = 15
TARGET_MS = 50
PADDED_TARGET_MS = 150


def make_files(folder: Path) -> dict[str, Path]:
    from assets.media import LIMITS
    from sandbox.samples import make_audio, make_image, make_video

    folder.mkdir(parents=True, exist_ok=True)
    made = {
        "JPEG 4000x3000": ("portrait.jpg", lambda: make_image(width=4000, height=3000)),
        "MP4 1080x1920 15 s": (
            "clip.mp4",
            lambda: make_video(width=1080, height=1920, seconds=15, fps=25),
        ),
        "MP3 15 s": ("voice.mp3", lambda: make_audio(seconds=15, fmt="mp3", sample_rate=44100)),
    }
    paths = {}
    for label, (filename, make) in made.items():
        path = folder / filename
        path.write_bytes(make())
        paths[label] = path
    padded = {
        "JPEG 4000x3000 padded": (
            "portrait-padded.jpg",
            paths["JPEG 4000x3000"],
            LIMITS["image"].max_bytes - 1,  # images must be smaller than 30 MB
        ),
        "MP4 1080x1920 15 s padded": (
            "clip-padded.mp4",
            paths["MP4 1080x1920 15 s"],
            LIMITS["video"].max_bytes,
        ),
    }
    for label, (filename, source, size) in padded.items():
        content = source.read_bytes()
        padding = size - len(content)
        if filename.endswith(".mp4"):  # an ISO BMFF free box: 32-bit size, type, zeros
            content += padding.to_bytes(4, "big") + b"free" + bytes(padding - 8)
        else:
            content += bytes(padding)
        path = folder / filename
        path.write_bytes(content)
        paths[label] = path
    return paths


def run(workdir: Path) -> list[Result]:
    from assets.media import MB, validate_media

    started = time.perf_counter()
    paths = make_files(workdir / "media")
    print(f"  media validation: files made in {time.perf_counter() - started:.1f} s")
    results = []
    for label, path in paths.items():
        durations = []
        with path.open("rb") as fileobj:
            info = validate_media(fileobj, filename=path.name)  # warm-up, and a sanity check
            for _ in range(REPEATS):
                started = time.perf_counter()
                validate_media(fileobj, filename=path.name)
                durations.append((time.perf_counter() - started) * 1000)
        median = statistics.median(durations)
        size_mb = info.size_bytes / MB
        target = PADDED_TARGET_MS if "padded" in label else TARGET_MS
        results.append(
            Result(
                NAME,
                f"{label} ({size_mb:.1f} MB): median of {REPEATS}",
                f"{median:.1f} ms (max {max(durations):.1f})",
                f"< {target} ms",
                median < target,
            )
        )
    return results
