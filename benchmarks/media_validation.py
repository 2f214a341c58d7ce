"""Benchmark 2: ``assets.media.validate_media`` as the admin's upload form runs it, time and
peak memory.

The files are made once in the run's temporary folder, with noise in them so that they compress
like photographs and phone videos rather than like flat test pictures:

* a 6000x4000 JPEG (quality 90), decoded at 1/8 scale before it is accepted;
* a 4000x3000 PNG of the same noise (about 20 MB), its pixel stream inflated and counted;
* a 4032x3024 HEIC (a phone's 12 megapixels), decoded whole: libheif takes the whole file and
  the whole picture in memory, as libwebp does for WebP (both bounded by the 30 MB limit);
* a 1080x1920 15 s H.264 MP4 at 30 fps with a key frame every second, at about 26 Mbit/s: 49 MB,
  just under the 50 MB limit; every packet is read, the first frame and the last second decoded;
* a 15 s MP3 (44.1 kHz), decoded whole;
* a 300 MB file that starts like an MP4 (sparse on disk), refused for its size unread.

Time: the median of ``REPEATS`` validations in this process. Memory: each file is validated in a
fresh Python process after a warm-up on a small file of the same kind; "peak RSS" is how far the
process's peak resident memory rose above its size before the validation (so it counts the C
libraries' buffers: decoded pictures, FFmpeg's), "Python peak" is tracemalloc's peak of the Python
allocations (file reads).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from benchmarks.results import Result

NAME = "media validation"
REPEATS = 9


@dataclass(frozen=True)
class Case:
    label: str
    filename: str
    warm_up: str  # a small file of the same kind, validated first in the measuring process
    max_ms: float
    max_rss_mb: float
    max_python_mb: float


CASES = (
    Case("JPEG 6000x4000", "photo.jpg", "small.jpg", 400, 64, 4),
    Case("PNG 4000x3000", "photo.png", "small.jpg", 1000, 16, 4),
    Case("HEIC 4032x3024", "photo.heic", "small.jpg", 2000, 128, 8),
    Case("MP4 1080x1920 15 s 30 fps", "clip.mp4", "small.mp4", 1000, 96, 4),
    Case("MP3 15 s", "voice.mp3", "small.mp3", 100, 16, 4),
    Case("300 MB upload, refused", "huge.mp4", "small.mp4", 5, 2, 1),
)


def make_files(folder: Path) -> None:
    import av
    import numpy
    from PIL import Image

    from sandbox.samples import make_audio, make_image, make_video

    folder.mkdir(parents=True, exist_ok=True)
    noise = Image.effect_noise((6000, 4000), 48).convert("RGB")
    photo = Image.blend(Image.open(io.BytesIO(make_image(width=6000, height=4000))), noise, 0.3)
    photo.save(folder / "photo.jpg", quality=90)
    photo.resize((4000, 3000)).save(folder / "photo.png")
    photo.resize((4032, 3024)).save(folder / "photo.heic", "HEIF")
    (folder / "small.jpg").write_bytes(make_image(width=600, height=800))

    # Seven noise pictures in turn: no frame predicts the next, as with a shaky hand-held phone.
    rng = numpy.random.default_rng(1)
    frames = [
        av.VideoFrame.from_ndarray(
            rng.integers(112, 144, size=(1920 * 3 // 2, 1080), dtype=numpy.uint8),
            format="yuv420p",
        )
        for _ in range(7)
    ]
    with av.open(str(folder / "clip.mp4"), mode="w") as output:
        rate = "25500k"
        options = {"preset": "ultrafast", "g": "30", "b": rate, "maxrate": rate, "bufsize": rate}
        stream = output.add_stream("libx264", rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = 1080, 1920, "yuv420p"  # type: ignore[union-attr]
        for index in range(15 * 30):
            frame = frames[index % len(frames)]
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    (folder / "small.mp4").write_bytes(make_video(width=640, height=640, seconds=2, fps=24))

    (folder / "voice.mp3").write_bytes(make_audio(seconds=15, fmt="mp3", sample_rate=44100))
    (folder / "small.mp3").write_bytes(make_audio(seconds=2, fmt="mp3"))

    with (folder / "huge.mp4").open("wb") as huge:
        huge.write((folder / "small.mp4").read_bytes())
        huge.truncate(300 * 1_000_000)


def run(workdir: Path) -> list[Result]:
    from assets.media import MB

    folder = workdir / "media"
    started = time.perf_counter()
    make_files(folder)
    print(f"  media validation: files made in {time.perf_counter() - started:.1f} s")
    results = []
    for case in CASES:
        path = folder / case.filename
        durations = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            _validate(path)
            durations.append((time.perf_counter() - started) * 1000)
        median = statistics.median(durations)
        memory = _measure_in_a_new_process(path, folder / case.warm_up)
        size = f"{path.stat().st_size / MB:.1f} MB"
        results += [
            Result(
                NAME,
                f"{case.label} ({size}): time, median of {REPEATS}",
                f"{median:.1f} ms (max {max(durations):.1f})",
                f"< {case.max_ms:g} ms",
                median < case.max_ms,
            ),
            Result(
                NAME,
                f"{case.label}: peak RSS / Python peak",
                f"+{memory['rss_mb']:.1f} MB / {memory['python_mb']:.1f} MB",
                f"< {case.max_rss_mb:g} MB / < {case.max_python_mb:g} MB",
                memory["rss_mb"] < case.max_rss_mb and memory["python_mb"] < case.max_python_mb,
            ),
        ]
    return results


def _measure_in_a_new_process(path: Path, warm_up: Path) -> dict[str, float]:
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "benchmarks.media_validation", str(path), str(warm_up)]
    output = subprocess.run(  # noqa: S603 - our own interpreter and module
        command, cwd=root, capture_output=True, text=True, check=True
    )
    return json.loads(output.stdout.splitlines()[-1])


def _measure(path: Path, warm_up: Path) -> dict[str, float]:
    """Peak memory of one validation of ``path``, in this (fresh) process."""
    from assets.media import MB

    _validate(warm_up)  # loads the libraries and their codecs
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak (VmHWM) from the current size
    before = _memory_status("VmRSS")
    _validate(path)
    peak = _memory_status("VmHWM")
    tracemalloc.start()
    _validate(path)
    python_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"rss_mb": max(0, peak - before) / MB, "python_mb": python_peak / MB}


def _validate(path: Path) -> None:
    """Validate the file as the upload form does, from an open file; refused or not."""
    from assets.media import MediaRejected, validate_media

    with path.open("rb") as fileobj, contextlib.suppress(MediaRejected):
        validate_media(fileobj, filename=path.name)


def _memory_status(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in bytes (Linux).

    Not ``getrusage``: its peak survives ``exec`` and would count the parent's memory at fork.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # kB
    raise LookupError(field)


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]), Path(sys.argv[2]))))
