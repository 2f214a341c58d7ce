"""How many invitation codes an address may type: ``CODE_TRIES`` per ``CODE_WINDOW_SECONDS``.

A code opens a person's invitation, so guessing is limited per client address
(``portal.client_ip``: behind a proxy the proxy's address never counts, so an attacker locked
out locks out nobody else). The count is the portal's shared one (``portal.throttle``, in the
database), taken before the lookup, so every web process and thread shares it and no lookup runs
beyond the limit; a code that was right gives its try back.
"""

from __future__ import annotations

import datetime

from portal.throttle import throttle_refund, throttle_take

CODE_TRIES = 10
CODE_WINDOW_SECONDS = 600


def code_try_key(address: str) -> str:
    """The throttle's key of one client address's typed codes."""
    return f"code:{address}"


def code_try_take(*, address: str, now: datetime.datetime | None = None) -> bool:
    """Count one typed code for ``address``; ``False`` when it is over the limit (no lookup).

    A window starts at an address's first try and lasts ``CODE_WINDOW_SECONDS``; a try after it
    starts a new one.
    """
    return throttle_take(
        key=code_try_key(address), limit=CODE_TRIES, window_seconds=CODE_WINDOW_SECONDS, now=now
    )


def code_try_refund(*, address: str) -> None:
    """A right code: its try does not count against the address."""
    throttle_refund(key=code_try_key(address))
