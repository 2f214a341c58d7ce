"""The copy of an accepted file the upstream downloads: location metadata blanked in place."""

from __future__ import annotations

import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO

from assets.media.images import _png_chunks
from assets.media.limits import _CHUNK_BYTES, MediaInfo


class LocationNotRemovable(Exception):
    """``strip_location`` could not walk the file's metadata, so cannot promise it is gone."""


def strip_location(fileobj: BinaryIO, info: MediaInfo) -> BinaryIO | None:
    """The copy of an accepted file that the upstream downloads: without location metadata.

    The contract, for the upload pipeline:

    * ``fileobj`` is the file ``validate_media`` accepted as ``info``. It is never modified (the
      stored original keeps its bytes and its ``sha256``) and is left at position 0.
    * Returns ``None`` when the file holds none of the metadata below: send the original.
    * Otherwise returns a new anonymous temporary file (removed when closed), at position 0, of
      exactly the original's size and format: store it beside the original (e.g.
      ``storage.save(name, File(copy, name))``, with the original's extension), sign the
      upstream's URL to it, and close it. It validates to the same measurements but ``sha256``.
    * Raises ``LocationNotRemovable`` when the file's metadata cannot be walked to be sure; do
      not send such a file (it does not happen to files written by cameras and phones).

    What is removed, in place (every length and offset is kept, so nothing is re-encoded or
    remuxed and the copy decodes exactly like the original):

    * EXIF GPS (JPEG, PNG, WebP, HEIC): the GPS directory is emptied and the values it points to
      are zeroed; the rest of EXIF, orientation above all, is kept. EXIF that cannot be parsed
      is zeroed whole;
    * XMP (JPEG, PNG, WebP, HEIC, MP4, MOV), replaced by an empty packet: it names places in
      many vocabularies (``exif:GPS*``, ``photoshop:City``, ``Iptc4xmpCore:Location``, ...) and
      holds nothing the upstream needs; IPTC (JPEG APP13, PNG raw profiles), zeroed: it holds
      city, region and country;
    * MP4 and MOV: ``©xyz`` and 3GPP ``loci`` boxes become ``free`` boxes, and the values of
      Apple's ``com.apple.quicktime.location.*`` keys are zeroed.

    GIF, MP3 and WAV files are returned as they are (``None``): cameras, phones and recorders
    write no location into them.
    """
    find_edits = _LOCATION_EDITS.get(info.format)
    if find_edits is None:
        return None
    try:
        edits = find_edits(fileobj, info.size_bytes)
    except (struct.error, IndexError, KeyError, ValueError, EOFError, SyntaxError) as exc:
        raise LocationNotRemovable(f"the {info.format} metadata cannot be walked: {exc}") from exc
    finally:
        fileobj.seek(0)
    if not edits:
        return None
    copy = tempfile.TemporaryFile()  # noqa: SIM115 (the caller owns and closes it)
    shutil.copyfileobj(fileobj, copy, _CHUNK_BYTES)
    fileobj.seek(0)
    for offset, data in edits:
        copy.seek(offset)
        copy.write(data)
    copy.seek(0)
    return copy


_Edit = tuple[int, bytes]  # bytes to write at a file offset
_EMPTY_XMP = (
    b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>'
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/><?xpacket end="w"?>'
)
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_JPEG_EXTENSION = b"http://ns.adobe.com/xmp/extension/\x00"
_XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")  # XMP in an ISO base media file
_PNG_METADATA_KEYWORDS = {
    b"XML:com.adobe.xmp",
    b"Raw profile type exif",
    b"Raw profile type APP1",
    b"Raw profile type xmp",
    b"Raw profile type iptc",
}
_PNG_BLANK_CHUNK = b"prVt"  # ancillary, private, safe to copy: every reader skips it
# Bytes per value of the TIFF field types 1 to 13 (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE,
# UNDEFINED, SSHORT, SLONG, SRATIONAL, FLOAT, DOUBLE, IFD).
_TIFF_TYPE_SIZES = dict(enumerate((1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4), start=1))
_GPS_IFD = 0x8825


def _empty_xmp(length: int) -> bytes:
    """An empty XMP packet padded with spaces (XMP's own padding) to ``length`` bytes."""
    return (_EMPTY_XMP if length >= len(_EMPTY_XMP) else b"").ljust(length, b" ")


def _exif_edits(tiff: bytes, base: int) -> list[_Edit]:
    """Edits emptying the GPS directory of the EXIF (TIFF) block ``tiff`` at file offset
    ``base``; edits zeroing the whole block when it cannot be parsed."""
    try:
        order = {b"II": "<", b"MM": ">"}[tiff[:2]]
        magic, ifd0 = struct.unpack_from(order + "HI", tiff, 2)
        if magic != 42:
            raise ValueError("not a TIFF header")
        gps = next((value for tag, _, _, value in _ifd(tiff, ifd0, order) if tag == _GPS_IFD), None)
        if gps is None:
            return []
        entries = _ifd(tiff, gps, order)
        edits = []
        for _, value_type, count, value in entries:
            size = _TIFF_TYPE_SIZES[value_type] * count
            if size > 4:  # stored apart from the entry, at offset `value`
                if value + size > len(tiff):
                    raise ValueError("GPS value outside the EXIF block")
                edits.append((base + value, bytes(size)))
        # No entries and no next directory: a valid, empty GPS directory.
        edits.append((base + gps, bytes(2 + 12 * len(entries) + 4)))
        return edits
    except (KeyError, ValueError, struct.error):
        return [(base, bytes(len(tiff)))]


def _ifd(tiff: bytes, offset: int, order: str) -> list[tuple[int, int, int, int]]:
    """(tag, type, count, value or offset) of each entry of the TIFF directory at ``offset``."""
    (count,) = struct.unpack_from(order + "H", tiff, offset)
    struct.unpack_from(order + "I", tiff, offset + 2 + 12 * count)  # the next-directory pointer
    return [struct.unpack_from(order + "HHII", tiff, offset + 2 + 12 * i) for i in range(count)]


def _jpeg_location(fileobj: BinaryIO, size: int, start: int = 0) -> list[_Edit]:
    """EXIF GPS, XMP and IPTC in the segments before the JPEG's scan, and in the other pictures
    of a multi-picture file (MPO: phones' depth maps and previews)."""
    edits: list[_Edit] = []
    offset = start + 2  # after SOI
    while offset + 4 <= size:
        fileobj.seek(offset)
        marker = fileobj.read(2)
        if marker[0] != 0xFF:
            raise ValueError("JPEG segment without a marker")
        if marker[1] == 0xFF:  # fill byte
            offset += 1
            continue
        if marker[1] in (0xD9, 0xDA):  # EOI, or the scan: metadata comes before it
            break
        (length,) = struct.unpack(">H", fileobj.read(2))
        if length < 2:
            raise ValueError("JPEG segment shorter than its length field")
        payload, at = fileobj.read(length - 2), offset + 4
        if marker[1] == 0xE1 and payload.startswith(b"Exif\x00\x00"):
            edits += _exif_edits(payload[6:], at + 6)
        elif marker[1] == 0xE1 and payload.startswith(_XMP_JPEG):
            edits.append((at + len(_XMP_JPEG), _empty_xmp(len(payload) - len(_XMP_JPEG))))
        elif (marker[1] == 0xE1 and payload.startswith(_XMP_JPEG_EXTENSION)) or marker[1] == 0xED:
            edits.append((at, bytes(len(payload))))  # extended XMP, IPTC: an unknown segment
        elif marker[1] == 0xE2 and payload.startswith(b"MPF\x00") and start == 0:
            for picture in _mpo_pictures(payload[4:]):
                edits += _jpeg_location(fileobj, size, at + 4 + picture)
        offset += 2 + length
    return edits


def _mpo_pictures(tiff: bytes) -> list[int]:
    """Offsets of a multi-picture JPEG's other pictures, from its MP index (CIPA DC-007)."""
    order = {b"II": "<", b"MM": ">"}[tiff[:2]]
    (ifd,) = struct.unpack_from(order + "I", tiff, 4)
    for tag, _, count, value in _ifd(tiff, ifd, order):
        if tag == 0xB002:  # MP entries: 16 bytes each; the first is the primary picture
            return [
                struct.unpack_from(order + "I", tiff, value + entry + 8)[0]
                for entry in range(16, count, 16)
            ]
    return []


def _png_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    """EXIF GPS in ``eXIf``; text chunks holding XMP, EXIF or IPTC become blank chunks."""
    edits: list[_Edit] = []
    for chunk in _png_chunks(fileobj):
        if chunk.type not in (b"eXIf", b"tEXt", b"zTXt", b"iTXt"):
            continue
        fileobj.seek(chunk.data_offset)
        data = fileobj.read(chunk.length)
        if chunk.type == b"eXIf":
            chunk_type, blanked = chunk.type, bytearray(data)
            for at, blank in _exif_edits(data, 0):
                blanked[at : at + len(blank)] = blank
        elif data.split(b"\x00", 1)[0] in _PNG_METADATA_KEYWORDS:
            chunk_type, blanked = _PNG_BLANK_CHUNK, bytearray(len(data))
        else:
            continue
        if blanked != data:  # a chunk's CRC covers its type and data: write all three
            crc = zlib.crc32(chunk_type + blanked).to_bytes(4, "big")
            edits.append((chunk.offset + 4, chunk_type + blanked + crc))
    return edits


def _webp_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    edits: list[_Edit] = []
    offset = 12  # after "RIFF", the RIFF size and "WEBP"
    while offset + 8 <= size:
        fileobj.seek(offset)
        fourcc, length = struct.unpack("<4sI", fileobj.read(8))
        at = offset + 8
        if fourcc == b"EXIF":
            data = fileobj.read(length)
            skip = 6 if data.startswith(b"Exif\x00\x00") else 0
            edits += _exif_edits(data[skip:], at + skip)
        elif fourcc == b"XMP ":
            edits.append((at, _empty_xmp(length)))
        offset = at + length + (length & 1)
    return edits


def _box_header(header: bytes, offset: int, end: int) -> tuple[bytes, int, int]:
    """(type, size, header size) of the ISO base media box at ``offset`` whose first bytes (16
    at most) are ``header``; its parent, or the file, ends at ``end``."""
    size, box_type = struct.unpack_from(">I4s", header)
    header_size = 8
    if size == 1:  # the size follows the type, in 64 bits
        (size,) = struct.unpack_from(">Q", header, 8)
        header_size = 16
    elif size == 0:  # the box runs to the end
        size = end - offset
    if size < header_size or offset + size > end:
        raise ValueError(f"box {box_type!r} overruns its parent")
    return box_type, size, header_size


def _iso_boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, offset, size, header size) of the ISO base media boxes in ``data[start:end]``."""
    offset = start
    while offset + 8 <= end:
        box_type, size, header = _box_header(data[offset : offset + 16], offset, end)
        yield box_type, offset, size, header
        offset += size


def _file_boxes(fileobj: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int, int]]:
    """Like ``_iso_boxes`` for the top level of a file, reading box headers only (a video's
    samples are never read)."""
    offset = 0
    while offset + 8 <= size:
        fileobj.seek(offset)
        box_type, box_size, header = _box_header(fileobj.read(16), offset, size)
        yield box_type, offset, box_size, header
        offset += box_size


def _read_box(fileobj: BinaryIO, box: tuple[bytes, int, int, int]) -> bytes:
    fileobj.seek(box[1])
    return fileobj.read(box[2])


def _heic_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    """EXIF GPS and XMP in the items of a HEIF file's ``meta`` box."""
    meta = next((box for box in _file_boxes(fileobj, size) if box[0] == b"meta"), None)
    if meta is None:
        return []
    data, meta_offset = _read_box(fileobj, meta), meta[1]
    children = {box[0]: box for box in _iso_boxes(data, 12, len(data))}  # after a FullBox header
    if b"iinf" not in children or b"iloc" not in children:
        return []
    idat = children.get(b"idat")
    idat_start = meta_offset + idat[1] + idat[3] if idat else None
    locations = _iloc(_box_payload(data, children[b"iloc"]), idat_start)
    edits: list[_Edit] = []
    for item, (item_type, content_type) in _iinf(_box_payload(data, children[b"iinf"])).items():
        extents = locations.get(item, [])
        if item_type == b"Exif" and len(extents) == 1:
            at, length = extents[0]
            fileobj.seek(at)
            exif = fileobj.read(length)
            tiff = 4 + int.from_bytes(exif[:4], "big")  # after the offset to the TIFF header
            edits += _exif_edits(exif[tiff:], at + tiff)
        elif item_type == b"Exif":
            edits += [(at, bytes(length)) for at, length in extents]
        elif item_type == b"mime" and content_type == b"application/rdf+xml":
            edits += [
                (at, _empty_xmp(length) if index == 0 else b" " * length)
                for index, (at, length) in enumerate(extents)
            ]
    return edits


def _box_payload(data: bytes, box: tuple[bytes, int, int, int]) -> bytes:
    _, offset, size, header = box
    return data[offset + header : offset + size]


def _iinf(payload: bytes) -> dict[int, tuple[bytes, bytes]]:
    """Item id -> (item type, MIME content type) from a HEIF item information box."""
    entries_at = 4 + (2 if payload[0] == 0 else 4)  # FullBox header, then the entry count
    items = {}
    for box in _iso_boxes(payload, entries_at, len(payload)):
        if box[0] != b"infe":
            continue
        infe = _box_payload(payload, box)
        version = infe[0]
        if version < 2:
            continue  # item types came with version 2
        id_size = 2 if version == 2 else 4
        item = int.from_bytes(infe[4 : 4 + id_size], "big")
        at = 4 + id_size + 2  # after the protection index
        item_type = infe[at : at + 4]
        name_end = infe.index(b"\x00", at + 4)
        content_type = infe[name_end + 1 :].split(b"\x00", 1)[0] if item_type == b"mime" else b""
        items[item] = (item_type, content_type)
    return items


def _iloc(payload: bytes, idat_start: int | None) -> dict[int, list[tuple[int, int]]]:
    """Item id -> [(file offset, length)] from a HEIF item location box (ISO/IEC 14496-12)."""
    version, at = payload[0], 4

    def number(size: int) -> int:
        nonlocal at
        if at + size > len(payload):
            raise ValueError("iloc box is cut short")
        at += size
        return int.from_bytes(payload[at - size : at], "big")

    sizes = number(2)
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    locations = {}
    for _ in range(number(2 if version < 2 else 4)):
        item = number(2 if version < 2 else 4)
        method = number(2) & 15 if version in (1, 2) else 0
        number(2)  # data reference index: 0 means "this file"
        base = number(base_size)
        extents = []
        for _ in range(number(2)):
            number(index_size)
            offset, length = number(offset_size), number(length_size)
            if method == 0:
                extents.append((base + offset, length))
            elif method == 1 and idat_start is not None:
                extents.append((idat_start + base + offset, length))
            else:
                raise ValueError(f"item {item} is stored in a way that cannot be located")
        locations[item] = extents
    return locations


def _quicktime_location(fileobj: BinaryIO, size: int) -> list[_Edit]:
    """Location and XMP boxes in an MP4 or MOV's ``moov``, and XMP at its top level."""
    edits: list[_Edit] = []
    for box in _file_boxes(fileobj, size):
        box_type, offset, _, header = box
        if box_type == b"uuid":
            fileobj.seek(offset + header)
            if fileobj.read(16) != _XMP_UUID:
                continue
        elif box_type != b"moov":
            continue
        data = _read_box(fileobj, box)
        edits += [(offset + at, blank) for at, blank in _qt_edits(data, 0, len(data))]
    return edits


def _qt_edits(data: bytes, start: int, end: int) -> list[_Edit]:
    """Edits blanking the location and XMP boxes in ``data[start:end]`` and the boxes within."""
    edits: list[_Edit] = []
    for box_type, offset, size, header in _iso_boxes(data, start, end):
        payload = offset + header
        is_xmp = box_type == b"XMP_" or (
            box_type == b"uuid" and data[payload : payload + 16] == _XMP_UUID
        )
        if box_type in (b"\xa9xyz", b"loci") or is_xmp:
            edits.append((offset + 4, b"free"))
            edits.append((payload, bytes(size - header)))
        elif box_type in (b"moov", b"trak", b"udta"):
            edits += _qt_edits(data, payload, offset + size)
        elif box_type == b"meta":
            # ISO's meta is a FullBox (4 bytes of version and flags); QuickTime's is not.
            full = data[payload + 4 : payload + 8] != b"hdlr"
            edits += _qt_meta_edits(data, payload + (4 if full else 0), offset + size)
    return edits


def _qt_meta_edits(data: bytes, start: int, end: int) -> list[_Edit]:
    """In a ``meta`` box: ``©xyz`` items of an iTunes-style list, and the values of Apple's
    location keys (``keys`` names them, ``ilst`` items are numbered after them)."""
    children = list(_iso_boxes(data, start, end))
    location_keys: set[int] = set()
    for box_type, offset, _, header in children:
        if box_type == b"keys":
            at = offset + header + 8  # after version, flags and the entry count
            for index in range(1, int.from_bytes(data[at - 4 : at], "big") + 1):
                key_size = int.from_bytes(data[at : at + 4], "big")
                if key_size < 8:
                    raise ValueError("keys entry too short")
                if b"location" in data[at + 8 : at + key_size].lower():
                    location_keys.add(index)
                at += key_size
    edits: list[_Edit] = []
    for box_type, offset, size, header in children:
        if box_type != b"ilst":
            continue
        for item_type, item_offset, item_size, item_header in _iso_boxes(
            data, offset + header, offset + size
        ):
            if item_type == b"\xa9xyz":
                edits.append((item_offset + 4, b"free"))
                edits.append((item_offset + item_header, bytes(item_size - item_header)))
            elif int.from_bytes(item_type, "big") in location_keys:
                for value in _iso_boxes(data, item_offset + item_header, item_offset + item_size):
                    if value[0] == b"data":  # type indicator and locale, then the value
                        value_at = value[1] + value[3] + 8
                        edits.append((value_at, bytes(value[1] + value[2] - value_at)))
    return edits


_LOCATION_EDITS: dict[str, Callable[[BinaryIO, int], list[_Edit]]] = {
    "jpeg": _jpeg_location,
    "png": _png_location,
    "webp": _webp_location,
    "heic": _heic_location,
    "mp4": _quicktime_location,
    "mov": _quicktime_location,
}
