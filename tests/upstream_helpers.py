"""Helpers shared by the ``test_upstream_*`` modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

BASE_URL = "https://anyfast.test"
# A recognisable key: tests assert it never shows up in errors, logs or output.
SECRET_KEY = "sk-LEAKCANARY0123456789abcdefSECRET"
# The key the portal uses against the sandbox (the ``upstream`` fixture).
SANDBOX_KEY = "sk-direct-portal-tests-0123456789"


class FakeClock:
    """A clock and a sleep that advances it, for code that waits."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def url(action: str, base_url: str = BASE_URL) -> str:
    return f"{base_url}/volc/asset/{action}"


def body_of(call: Any) -> dict[str, Any]:
    """The JSON body a ``responses`` call sent."""
    return json.loads(call.request.body)


def asset_json(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "Id": "asset-20261124120000-abcde",
        "Name": "tcp-0001",
        "URL": "https://ark-media-asset.example/file.png?X-Tos-Expires=43200",
        "AssetType": "Image",
        "GroupId": "group-20261124115900-kbdhw",
        "Status": "Active",
        "ProjectName": "default",
        "CreateTime": "2026-11-24T04:00:00Z",
        "UpdateTime": "2026-11-24T04:00:05Z",
    }
    data.update(overrides)
    return data


def max_in_any_window(timestamps: list[float], seconds: float) -> int:
    """The most timestamps inside any half-open window ``[t, t + seconds)``."""
    ordered = sorted(timestamps)
    best, start = 0, 0
    for end, stamp in enumerate(ordered):
        while ordered[start] <= stamp - seconds:
            start += 1
        best = max(best, end - start + 1)
    return best


def run_together(
    script: str, *args: str, processes: int, env: Mapping[str, str] | None = None
) -> list[Any]:
    """Run ``processes`` interpreters of ``script`` that start working at the same moment.

    Each gets ``args`` as ``argv[1:]``; once set up it must print ``ready`` and read the shared
    start time (seconds since 1970) from stdin, so that a slow start-up on a busy machine delays
    the start of all rather than eating into one's share. Each must then print one JSON
    document, which is returned.
    """
    workers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            text=True,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdin is not None
        if worker.stdout.readline().strip() != "ready":
            raise AssertionError(worker.communicate(timeout=60)[1])
    start_at = time.time() + 0.3
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(f"{start_at}\n")
        worker.stdin.flush()
    outputs = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        outputs.append(json.loads(out))
    return outputs


class HeldCreates:
    """The sandbox's CreateAsset, held open while ``holding`` until ``release``, as a gateway
    holds a create: the client gives up waiting, and the create is handled afterwards all the
    same. ``handled`` counts every CreateAsset handled, held or not.

    Install ``wrap(sandbox.actions.ACTIONS["CreateAsset"])`` in place of the handler.
    """

    def __init__(self) -> None:
        self.holding = True
        self.released = threading.Event()
        self.handled = 0
        self._done = threading.Condition()

    def wrap(self, create: Callable[..., Any]) -> Callable[..., Any]:
        def held_create(*args: Any) -> Any:
            if self.holding:
                self.released.wait(60)
            try:
                return create(*args)
            finally:
                with self._done:
                    self.handled += 1
                    self._done.notify_all()

        return held_create

    def release(self, *, then_wait_for: int) -> None:
        """Stop holding, let the held calls go, and wait until ``then_wait_for`` were handled."""
        self.holding = False
        self.released.set()
        with self._done:
            assert self._done.wait_for(lambda: self.handled >= then_wait_for, timeout=30)
