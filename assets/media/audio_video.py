"""Video and audio, through FFmpeg (PyAV): measured from the container, every packet read, audio
decoded whole, video's first frame and last group of pictures decoded."""

from __future__ import annotations

import struct
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING, BinaryIO

import av

from assets.media.formats import _DEMUXERS, _Unnamed
from assets.media.limits import (
    FORMATS,
    LIMITS,
    LimitViolation,
    MediaInfo,
    MediaRejected,
    _formats,
    check_limits,
)

if TYPE_CHECKING:
    from av.container import InputContainer

# A file's packets must cover this share of the duration its header claims (MP3 and WAV headers
# estimate it; MP4 and MOV indexes are exact and are also checked packet by packet).
_MIN_COVERAGE = Fraction(95, 100)


def _open_av(fileobj: BinaryIO, fmt: str) -> InputContainer:
    fileobj.seek(0)
    return av.open(_Unnamed(fileobj), mode="r", format=_DEMUXERS[fmt], metadata_errors="ignore")


def probe_av(fileobj: BinaryIO, info: MediaInfo) -> MediaInfo:
    if info.format == "wav" and not _wav_data_is_whole(fileobj, info.size_bytes):
        # FFmpeg would shorten the duration to what is there, so a cut WAV would pass as short.
        raise EOFError("the WAV's sound data is cut short")
    with _open_av(fileobj, info.format) as container:  # opening costs a frame's decoding: once
        measured = _measure_av(container, info)
        if not check_limits(measured):  # a file refused anyway is not worth decoding
            _decode_av(container, measured)
    return measured


def _measure_av(container: InputContainer, info: MediaInfo) -> MediaInfo:
    name = FORMATS[info.format].name
    # container.duration (µs) is what ffprobe calls Duration; MP3 encoder padding is excluded.
    duration = container.duration / av.time_base if container.duration else None
    if info.kind == "audio":
        if not container.streams.audio:
            raise ValueError("no audio track")
        return replace(info, duration_seconds=duration)
    if not container.streams.video:
        message = f"This {name} file has no video track; audio must be {_formats(LIMITS['audio'])}."
        raise MediaRejected([LimitViolation("unsupported_format", message)])
    stream = container.streams.video[0]
    context = stream.codec_context
    if context is None:  # FFmpeg has no decoder for it
        message = f"This {name} file's video is encoded in a way the portal cannot decode."
        raise MediaRejected([LimitViolation("unsupported_format", message)])
    return replace(
        info,
        width=context.width,
        height=context.height,
        duration_seconds=duration,
        fps=float(stream.average_rate) if stream.average_rate else None,
    )


def _wav_data_is_whole(fileobj: BinaryIO, size: int) -> bool:
    """Whether the WAV's ``data`` chunk holds as many bytes as its header says."""
    offset = 12  # after "RIFF", the RIFF size and "WAVE"
    while offset + 8 <= size:
        fileobj.seek(offset)
        chunk_id, length = struct.unpack("<4sI", fileobj.read(8))
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown": a recorder that could not seek back to write it.
            return length in (0, 0xFFFFFFFF) or offset + 8 + length <= size
        offset += 8 + length + (length & 1)  # chunks are padded to an even size
    return False


def _decode_av(container: InputContainer, info: MediaInfo) -> None:
    """Read every packet of the measured track: all must be there and whole, and those shown
    must cover the duration. Audio is decoded whole; video's first frame and its last group of
    pictures (from the last key frame) are decoded, so its last frame is too.

    Packets an edit list leaves out (a phone's trim, an encoder's delay) are read but not shown:
    FFmpeg flags them "discard" and its decoders drop their frames.
    """
    audio = info.kind == "audio"
    stream = container.streams.audio[0] if audio else container.streams.video[0]
    context = stream.codec_context
    packets = decoded = shown_end = 0
    shown: list[int] = []  # the timestamps of the packets shown
    keys: list[int] = []
    for packet in container.demux(stream):
        if packet.size == 0 and packet.pts is None:
            continue  # the empty packet that marks the end
        if packet.is_corrupt:
            raise EOFError("a packet is cut short")
        packets += 1
        if packet.pts is not None:
            if packet.is_keyframe:
                keys.append(packet.pts)
            if not packet.is_discard:
                shown.append(packet.pts)
                shown_end = max(shown_end, packet.pts + (packet.duration or 0))
        if audio or not decoded:
            decoded += len(context.decode(packet))
    decoded += len(context.decode(None))
    if not packets or not decoded or not shown:
        raise EOFError("no packet decodes")
    if stream.frames and packets < stream.frames:
        raise EOFError(f"{packets} of {stream.frames} packets are there")
    first, last = min(shown), max(shown)
    time_base = stream.time_base or Fraction(1, av.time_base)
    claimed = (
        stream.duration * time_base
        if stream.duration
        else Fraction(container.duration or 0, av.time_base)
    )
    if (shown_end - first) * time_base < claimed * _MIN_COVERAGE:
        raise EOFError("the packets end before the duration the header claims")
    if isinstance(stream, av.VideoStream):
        last_key = max((key for key in keys if key <= last), default=first)
        _decode_last_frames(container, stream, last_key=last_key, last_pts=last)


def _decode_last_frames(
    container: InputContainer, stream: av.VideoStream, *, last_key: int, last_pts: int
) -> None:
    """Decode from the last key frame to the end; the last frame shown must come out."""
    container.seek(last_key, stream=stream, backward=True, any_frame=False)
    stream.codec_context.flush_buffers()
    for packet in container.demux(stream):  # the empty packet at the end flushes the decoder
        if any(frame.pts == last_pts for frame in packet.decode()):
            return
    raise EOFError("the last frame does not decode")
