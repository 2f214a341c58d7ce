"""The client's address: the one function every per-address limit counts by.

Failed logins (django-axes, ``AXES_CLIENT_IP_CALLABLE``), wrong invitation codes
(``verification.throttle``) and anything else that needs "who is asking" use ``client_ip``, so
that behind a proxy no limit counts the proxy's address (one count for everyone, so one attacker
locking everybody out) and no limit trusts what the client wrote in ``X-Forwarded-For``.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    """The address the request came from.

    ``REMOTE_ADDR``, unless ``TRUSTED_PROXY_COUNT`` proxies stand in front of the web server:
    then the address the outermost proxy saw, which is that many entries from the right of
    ``X-Forwarded-For`` (each proxy appends the address it saw; entries further left come from
    the client, which could write anything there to dodge a limit).
    """
    count = settings.TRUSTED_PROXY_COUNT
    if count > 0:
        forwarded = [
            address.strip()
            for address in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if address.strip()
        ]
        if len(forwarded) >= count:
            return forwarded[-count]
    return str(request.META.get("REMOTE_ADDR", ""))
