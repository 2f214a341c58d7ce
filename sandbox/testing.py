"""Helpers for tests and benchmarks that drive the sandbox.

``call`` posts one action with Django's test client; ``complete_session`` and ``fail_session``
play the person on the phone without a browser (for code that only holds a BytedToken);
``gunicorn`` serves the portal and its sandbox from real worker processes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import requests
from django.conf import settings
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gunicorn(
    env: Mapping[str, str], *, workers: int, threads: int = 1, port: int | None = None
) -> Iterator[str]:
    """Serve the portal (and its sandbox) with gunicorn's gthread workers on 127.0.0.1.

    ``env`` is added to this process's environment (the settings read it at start-up: point
    ``DATABASE_URL`` at a migrated database). Yields the base URL once a worker answers, and
    stops the server on exit.
    """
    port = port or free_port()
    server = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
        [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.wsgi",
            f"--bind=127.0.0.1:{port}",
            f"--workers={workers}",
            f"--threads={threads}",
            "--worker-class=gthread",
            "--timeout=60",
            "--log-level=warning",
        ],
        cwd=settings.BASE_DIR,
        env={**os.environ, **env},
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base_url}/admin/login/", timeout=5).ok:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError(f"gunicorn did not start serving on {base_url}")
            time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
