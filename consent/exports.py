"""Exports of consent data for legal: the consent list as CSV, streamed.

The CSV is produced lazily, a chunk of records at a time (``iterator(chunk_size)``, the uses
prefetched per chunk), so an export of any size starts at once and holds one chunk in memory.
Spreadsheet programs run a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula, so
such cells are written with a leading apostrophe (OWASP's CSV injection advice).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.db.models import QuerySet

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


# Records read (and their uses prefetched) per query, and so the rows of text sent at once.
CHUNK_SIZE = 1000


class _Line:
    """A file-like object whose ``write`` returns what it was given: csv.writer makes lines."""

    def write(self, text: str) -> str:
        return text


def consent_records_csv(
    records: QuerySet[ConsentRecord], *, chunk_size: int = CHUNK_SIZE
) -> Iterator[str]:
    """The CSV, lazily: the header line, then the lines of each chunk of ``chunk_size`` records.

    Nothing is read until the first line past the header is asked for. The people and the
    reviewers are selected and the uses prefetched here (one query per chunk).
    """
    writer = csv.writer(_Line())
    yield writer.writerow(CONSENT_CSV_COLUMNS)
    rows = records.select_related("person", "reviewed_by").prefetch_related("uses")
    lines: list[str] = []
    for record in rows.iterator(chunk_size=chunk_size):
        lines.append(writer.writerow([_cell(value) for value in _row(record)]))
        if len(lines) == chunk_size:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


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
