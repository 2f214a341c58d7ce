"""Exports of consent data for legal: the consent list as CSV.

Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, so
such cells are written with a leading apostrophe (OWASP's CSV injection advice).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from consent.models import ConsentRecord

CONSENT_CSV_COLUMNS = (
    "record id",
    "person id",
    "person",
    "status",
    "consent text version",
    "consent text SHA-256",
    "consent text language",
    "likeness",
    "media",
    "uses",
    "territory",
    "starts on",
    "expires on",
    "model training",
    "representation",
    "minor",
    "capture method",
    "submitted at",
    "reviewed by",
    "reviewed at",
    "revoked at",
    "revocation channel",
    "ended at",
    "supersedes record",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def consent_records_csv(records: Iterable[ConsentRecord]) -> str:
    """One CSV row per record (``records`` should prefetch ``uses`` and select the people)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CONSENT_CSV_COLUMNS)
    for record in records:
        writer.writerow([_cell(value) for value in _row(record)])
    return buffer.getvalue()


def _row(record: ConsentRecord) -> list[object]:
    uses = " | ".join(
        f"{use.project}: {use.medium}; {use.channels}; {use.territory}; {use.languages}"
        for use in record.uses.all()
    )
    return [
        record.pk,
        record.person_id,
        record.person.legal_name,
        record.get_status_display(),
        record.consent_text_version,
        record.consent_text_sha256,
        record.consent_text_language,
        ", ".join(record.likeness_elements()),
        ", ".join(record.media_types()),
        uses,
        record.territory,
        record.starts_on,
        record.expires_on or "",
        "yes" if record.allows_model_training else "no",
        record.get_representation_display(),
        "yes" if record.is_minor else "no",
        record.get_capture_method_display(),
        record.submitted_at or "",
        record.reviewed_by.get_username() if record.reviewed_by else "",
        record.reviewed_at or "",
        record.revoked_at or "",
        record.get_revocation_channel_display() if record.revocation_channel else "",
        record.ended_at or "",
        record.supersedes_id or "",
    ]


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text
