"""Helpers shared by the verification tests (``test_verification_*``, ``test_browser_verify``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sandbox import counters

KEY = "sk-direct-verify-tests-0123456789"
AIGC_KEY = "sk-aigc-ordinary-key-555555"


def use_sandbox(settings: Any, live_server: Any, tmp_path: Path) -> None:
    """The sandbox (over real HTTP) as the upstream, quiet, with a private limiter file."""
    settings.ANYFAST_BASE_URL = live_server.url + "/sandbox"
    settings.PORTAL_PUBLIC_URL = live_server.url
    settings.ANYFAST_API_KEY = KEY
    settings.ANYFAST_RATE_LIMIT_ENABLED = True
    settings.ANYFAST_RATE_LIMIT_REDIS_URL = ""
    settings.ANYFAST_RATE_LIMIT_FILE = tmp_path / "rate-limit.sqlite3"
    settings.SANDBOX_ENFORCE_RATE_LIMITS = True
    settings.SANDBOX_LATENCY_MS = 0
    for fault in ("500", "502", "429", "TIMEOUT", "DROP"):
        setattr(settings, f"SANDBOX_FAULT_RATE_{fault}", 0.0)
    counters.reset()
