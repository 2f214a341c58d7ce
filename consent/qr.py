"""QR codes as inline SVG (``qrcode``'s path image: no Pillow, no file)."""

from __future__ import annotations

import qrcode
import qrcode.image.svg
from django.utils.safestring import SafeString, mark_safe


def qr_svg(text: str, *, box_size: int = 10) -> SafeString:
    """An inline ``<svg>`` QR code of ``text`` (medium error correction, 4-module border).

    ``text`` is encoded by the library into path data, never copied into the markup, so the
    result is safe to embed.
    """
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=4
    )
    code.add_data(text)
    code.make(fit=True)
    image = code.make_image(image_factory=qrcode.image.svg.SvgPathImage)
    svg: str = image.to_string(encoding="unicode")
    return mark_safe(svg)  # noqa: S308 - generated path data only, see the docstring
