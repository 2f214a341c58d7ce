"""The portal and its sandbox served by real gunicorn processes, for tests and benchmarks.

Free of Django imports, so a caller may use it before Django is set up (the benchmarks prepare
the environment the settings will read first).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def _get(url: str) -> None:
    requests.get(url, timeout=30)


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
    ``DATABASE_URL`` at a migrated database). Yields the base URL once the workers answer, and
    stops the server on exit.

    Each worker loads the URLconf, the views and the middleware on its first request, which
    takes up to a second on a busy machine: a burst of concurrent requests warms every worker
    first, so that the first timed calls (the rate-limit tests count arrivals) are not late.
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
        cwd=ROOT,
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
        with ThreadPoolExecutor(workers * threads) as pool:
            list(pool.map(_get, [f"{base_url}/admin/login/"] * (workers * threads * 2)))
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
