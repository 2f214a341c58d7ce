"""The signed copy of an electronically signed consent: a PDF, and its consent receipt.

The PDF holds the exact consent text of the template version, the terms shown beside it, the
signature (typed name, and the drawing when one was made) and an evidence page with the hashes.
Inside it, as embedded files, are the text's exact bytes (``consent-text.txt``: its SHA-256 is the
template version's) and the consent receipt (``consent-receipt.json``, ISO/IEC 27560 / Kantara
Consent Receipt fields), so the copy the person keeps proves itself without the portal.

Chinese text needs a CJK font: the first of ``CJK_FONTS`` present (Debian's
``fonts-wqy-microhei`` or ``fonts-noto-cjk``); without one, only Latin text can be rendered and
``SignedPdfUnavailable`` says so.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import io
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from PIL import Image

CJK_FONTS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
LATIN_FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),)
TEXT_ATTACHMENT = "consent-text.txt"
RECEIPT_ATTACHMENT = "consent-receipt.json"
# A drawn signature: a small PNG from the page's canvas.
MAX_DRAWING_BYTES = 300_000
MAX_DRAWING_PIXELS = 2000 * 1000


class SignedPdfUnavailable(Exception):
    """The PDF cannot be rendered here (no font for the text's script)."""


class DrawingRefused(ValueError):
    """The drawn signature is not a small PNG image."""


@dataclass(frozen=True)
class SignedCopy:
    """What the signing rendered: the PDF's bytes and the receipt inside it."""

    pdf: bytes
    receipt: dict[str, Any]


def _font(cjk: bool) -> Path:
    for path in (*CJK_FONTS, *(() if cjk else LATIN_FONTS)):
        if path.exists():
            return path
    raise SignedPdfUnavailable(
        "No font here renders this consent text"
        + (" (Chinese needs fonts-wqy-microhei or fonts-noto-cjk)." if cjk else ".")
    )


def _has_cjk(text: str) -> bool:
    return any(ord(char) >= 0x2E80 for char in text)


def drawing_png(data_url: str) -> bytes:
    """The PNG bytes of a ``data:image/png;base64,…`` drawing, checked to be a small PNG."""
    prefix = "data:image/png;base64,"
    if not data_url.startswith(prefix):
        raise DrawingRefused("The drawn signature must be a PNG image.")
    try:
        png = base64.b64decode(data_url[len(prefix) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DrawingRefused("The drawn signature could not be read.") from exc
    if len(png) > MAX_DRAWING_BYTES:
        raise DrawingRefused("The drawn signature is too large.")
    try:
        with Image.open(io.BytesIO(png)) as image:
            if image.format != "PNG" or image.width * image.height > MAX_DRAWING_PIXELS:
                raise DrawingRefused("The drawn signature must be a small PNG image.")
            image.verify()
    except (OSError, SyntaxError) as exc:
        raise DrawingRefused("The drawn signature could not be read.") from exc
    return png


def consent_receipt(
    *,
    receipt_id: uuid.UUID,
    signed_at: datetime.datetime,
    person: Any,
    language: str,
    template_label: str,
    text_sha256: str,
    purposes: list[dict[str, str]],
    notices: list[str],
    expires_on: datetime.date | None,
    policy_url: str,
) -> dict[str, Any]:
    """A consent receipt with the fields of the Kantara Consent Receipt 1.1 and ISO/IEC 27560."""
    return {
        "version": "KI-CR-v1.1.0",
        "jurisdiction": settings.CONSENT_RECEIPT_JURISDICTION,
        "consentTimestamp": int(signed_at.timestamp()),
        "consentTimestampISO": signed_at.isoformat(),
        "collectionMethod": "electronic signature on the portal's invitation page",
        "consentReceiptID": str(receipt_id),
        "language": language,
        "piiPrincipalId": person.email or person.legal_name,
        "piiControllers": [
            {
                "piiController": settings.PORTAL_ORGANISATION_NAME,
                "onBehalf": False,
                "contact": settings.PORTAL_ORGANISATION_NAME,
                "email": settings.DEFAULT_FROM_EMAIL,
                "piiControllerUrl": settings.PORTAL_PUBLIC_URL,
            }
        ],
        "policyUrl": policy_url,
        "notice": {"name": template_label, "sha256": text_sha256, "notices": notices},
        "services": [
            {
                "service": "Use of the person's likeness",
                "purposes": [
                    {
                        **purpose,
                        "consentType": "EXPLICIT",
                        "piiCategory": ["biometric data (face geometry)", "likeness"],
                        "primaryPurpose": True,
                        "termination": (
                            f"ends {expires_on.isoformat()}" if expires_on else "until withdrawn"
                        ),
                        "thirdPartyDisclosure": True,
                        "thirdPartyName": "the verification and generation provider (BytePlus)",
                    }
                    for purpose in purposes
                ],
            }
        ],
        "sensitive": True,
        "spiCat": ["biometric data"],
    }


def render_signed_pdf(
    *,
    title: str,
    text: str,
    terms: list[tuple[str, str]],
    typed_name: str,
    drawing: bytes | None,
    evidence: list[tuple[str, str]],
    receipt: dict[str, Any],
) -> bytes:
    """The signed consent as PDF bytes (see the module docstring)."""
    everything = "\n".join([title, text, typed_name, *(f"{k}{v}" for k, v in terms + evidence)])
    pdf = FPDF(format="A4")
    pdf.set_margins(18, 18, 18)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.add_font("body", fname=str(_font(_has_cjk(everything))))
    pdf.set_title(title)
    pdf.set_creator(settings.PORTAL_ORGANISATION_NAME)
    pdf.add_page()
    width = pdf.epw

    def heading(words: str) -> None:
        pdf.set_font("body", size=14)
        pdf.multi_cell(width, 8, words, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(2)
        pdf.set_font("body", size=10)

    def rows(pairs: list[tuple[str, str]]) -> None:
        for label, value in pairs:
            pdf.set_font("body", size=8)
            pdf.multi_cell(width, 4.5, label, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_font("body", size=10)
            pdf.multi_cell(width, 5.5, value or "—", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(1.5)

    heading(title)
    pdf.multi_cell(width, 5.5, text, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    heading("Terms")
    rows(terms)
    heading("Signature")
    rows([("Signed by (typed full legal name)", typed_name)])
    if drawing is not None:
        pdf.image(io.BytesIO(drawing), w=70)
    pdf.add_page()
    heading("Evidence")
    rows(evidence)
    pdf.embed_file(bytes=text.encode("utf-8"), basename=TEXT_ATTACHMENT, mime_type="text/plain")
    receipt_bytes = json.dumps(receipt, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
    pdf.embed_file(
        bytes=receipt_bytes.encode("utf-8"),
        basename=RECEIPT_ATTACHMENT,
        mime_type="application/json",
    )
    return bytes(pdf.output())
