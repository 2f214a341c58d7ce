"""The inline QR code SVG."""

from __future__ import annotations

import re
from xml.etree import ElementTree

import qrcode

from portal.qr import qr_svg

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)  # noqa: S314 (the portal's own output)


def _dark_modules(svg: str) -> set[tuple[int, int]]:
    """The (x, y) modules the SVG paints black, read back from its path's squares."""
    path = _parse(svg).find(f"{SVG}path")
    assert path is not None
    squares = re.findall(r"M(\d+),(\d+)H(\d+)V(\d+)H(\d+)z", path.get("d", ""))
    assert squares
    return {(int(x), int(y)) for x, y, *_ in squares}


def test_qr_svg_paints_exactly_the_modules_of_the_data():
    link = "https://portal.example/verify/Zm9vYmFyYmF6cXV4/"

    svg = qr_svg(link, label="Invitation link")

    reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    reference.add_data(link)
    matrix = reference.get_matrix()  # includes the quiet zone
    expected = {(x, y) for y, row in enumerate(matrix) for x, dark in enumerate(row) if dark}
    assert _dark_modules(svg) == expected
    root = _parse(svg)
    assert root.get("viewBox") == f"0 0 {len(matrix)} {len(matrix)}"


def test_qr_svg_is_inline_sizeless_and_labelled_with_the_label_escaped():
    svg = qr_svg("https://portal.example/verify/x/", label='Code for <Ada> & "Grace"')

    assert svg.startswith("<svg ")
    assert "<?xml" not in svg
    root = _parse(svg)
    assert root.get("aria-label") == 'Code for <Ada> & "Grace"'
    assert "&lt;Ada&gt; &amp; &quot;Grace&quot;" in svg
    assert (root.get("class"), root.get("role")) == ("qr-code", "img")
    assert root.get("width") is None and root.get("height") is None
    assert ' id="' not in svg  # several codes may share a page
    rect = root.find(f"{SVG}rect")
    assert rect is not None and rect.get("fill") == "white"
