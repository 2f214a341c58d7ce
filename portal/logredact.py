"""Keep signed file links out of logs.

A link made by ``assets.signing.signed_file_url`` (``/files/<token>/<name>``) opens the file to
whoever holds it until it expires, so its token is a credential: ``mask_file_tokens`` replaces
it, also percent-encoded (``%2Ffiles%2F<token>``, as in a quoted ``?next=`` or ``URL=``), and
``MaskFileTokens`` applies that to log records (settings.LOGGING). The stored file name after
the token is random and stays readable for tracing. A person's own link (``/me/<token>/``,
``consent.person_pages``) opens their page: its token is masked the same way.
"""

from __future__ import annotations

import logging
import re

MASK = "***"
# The prefix is where portal/urls.py mounts assets.urls; a token is URL-safe base64 and colons
# (django.core.signing), the colons possibly percent-encoded.
_FILE_TOKEN = re.compile(r"(?i)((?:/|%2F)(?:files|me)(?:/|%2F))(?:[A-Za-z0-9_.:-]|%3A)+")


def mask_file_tokens(text: str) -> str:
    """``text`` with the token of every ``/files/<token>/...`` or ``/me/<token>/...`` path or URL
    replaced by ``***``."""
    return _FILE_TOKEN.sub(rf"\g<1>{MASK}", text)


class MaskFileTokens(logging.Filter):
    """A logging filter that masks signed file tokens in a record's message; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError, KeyError):
            return True  # a malformed record: the handler reports it when it formats it
        masked = mask_file_tokens(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return True
