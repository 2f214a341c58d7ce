"""Keep credentials out of logs: signed file links, invitation links and codes, BytedTokens.

- A link made by ``assets.signing.signed_file_url`` (``/files/<token>/<name>``) opens the file
  to whoever holds it until it expires: ``mask_file_tokens`` replaces its token, also
  percent-encoded (``%2Ffiles%2F<token>``, as in a quoted ``?next=`` or ``URL=``). The stored
  file name after the token is random and stays readable for tracing.
- An invitation link (``/verify/<token>/``, and its ``start/``) opens a person's invitation,
  and so does a ``code=`` or ``token=`` in a query; a ``bytedToken=`` (the callback's query) or a
  BytedToken quoted in the upstream's words ("The specified BytedToken 2026… is not found") lets
  whoever holds it act on a verification session. ``mask_secrets`` masks all of these, and
  ``install_record_masking`` applies it to every log record as it is made (the portal's app
  config installs it; ``MaskFileTokens``, in settings.LOGGING, too), gunicorn's access log
  (portal/gunicorn.conf.py) to every value it logs. A BytedToken keeps its last six
  characters, as on the staff's pages, to match a log line with a session.
- A person's own link (``/me/<token>/``, ``consent.person_pages``) opens their page: its token
  is masked as a file link's is.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# The prefix is where portal/urls.py mounts assets.urls; a token is URL-safe base64 and colons
# (django.core.signing), the colons possibly percent-encoded.
_FILE_TOKEN = re.compile(r"(?i)((?:/|%2F)(?:files|me)(?:/|%2F))(?:[A-Za-z0-9_.:-]|%3A)+")
# /verify/<invitation token>/ (portal/urls.py mounts verification.urls at verify/); the code
# page (/verify/) and the callback's pages (/verify/callback/<public id>/) carry none.
_INVITATION_TOKEN = re.compile(r"(?i)((?:/|%2F)verify(?:/|%2F))(?!callback(?:/|%2F|$))[\w-]+")
# A query parameter that is a credential, plain (``bytedToken=…``) or percent-encoded inside
# another URL (``bytedToken%3D…``); ``resultCode=`` and the like are not ``code=``.
_SECRET_PARAMETER = re.compile(
    r"(?i)((?:^|(?<=[^\w%])|(?<=%3F)|(?<=%26))(?:bytedToken|code|token)(?:=|%3D))"
    r"(?:(?!%26)[^&\s\"'#<>;,])*"
)
# A BytedToken the upstream quotes in its words: long, with digits (not "is" or "expired").
_QUOTED_BYTED_TOKEN = re.compile(
    r"(?i)(bytedtoken[\"':=\s]+)(?=[A-Za-z_-]*\d)[\w-]{6,}?([\w-]{6})(?![\w-])"
)


def mask_file_tokens(text: str) -> str:
    """``text`` with the token of every ``/files/<token>/...`` or ``/me/<token>/...`` path or URL
    replaced by ``***``."""
    return _FILE_TOKEN.sub(rf"\g<1>{MASK}", text)


def mask_secrets(text: str) -> str:
    """``text`` with every credential this module knows masked (see the module's doc)."""
    text = mask_file_tokens(text)
    text = _INVITATION_TOKEN.sub(rf"\g<1>{MASK}", text)
    text = _SECRET_PARAMETER.sub(rf"\g<1>{MASK}", text)
    return _QUOTED_BYTED_TOKEN.sub(r"\g<1>…\g<2>", text)


def _mask_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except (TypeError, ValueError, KeyError):
        return  # a malformed record: the handler reports it when it formats it
    masked = mask_secrets(message)
    if masked != message:
        record.msg, record.args = masked, ()


def install_record_masking() -> None:
    """Mask every log record of this process as it is made (``logging.setLogRecordFactory``):
    whichever logger wrote it and whichever handler gets it (the console, a test's capture,
    gunicorn's error log), it carries no credential. Installed once, by the portal's app
    config and by gunicorn's configuration; the filter below stays for handlers set up
    before."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_secrets", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _mask_record(record)
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


class MaskFileTokens(logging.Filter):
    """A logging filter that masks credentials (``mask_secrets``, signed file tokens among
    them) in a record's message; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        _mask_record(record)
        return True
