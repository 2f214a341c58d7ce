"""Helpers for tests and benchmarks that drive the sandbox.

``call`` posts one action with Django's test client; ``complete_session`` and ``fail_session``
play the person on the phone without a browser (for code that only holds a BytedToken).
"""

from __future__ import annotations

import json
from typing import Any

from django.test import Client
from django.urls import reverse

from sandbox import services
from sandbox.models import SandboxSession

DEFAULT_KEY = "sk-sandbox-test"


def api_path(action: str) -> str:
    return reverse("sandbox:api", args=[action])


def call(
    client: Client, action: str, body: dict[str, Any] | None = None, *, key: str = DEFAULT_KEY
) -> Any:
    """``POST /sandbox/volc/asset/<action>`` with a Bearer key and a JSON body."""
    return client.post(
        api_path(action),
        data=json.dumps(body or {}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {key}"},
    )


def complete_session(byted_token: str, *, identity: str = "ada") -> str:
    """Complete the session as ``identity`` as the phone page would; its new GroupId."""
    session = SandboxSession.objects.get(byted_token=byted_token)
    session = services.session_complete(session=session, identity=identity)
    assert session.group is not None  # session_complete always creates it
    return session.group.group_id


def fail_session(byted_token: str) -> None:
    """Fail the session as the phone page's Fail button would."""
    session = SandboxSession.objects.get(byted_token=byted_token)
    services.session_fail(session=session)
