"""Benchmark 1: the deployment-wide rate limiter against the sandbox under real load.

gunicorn serves the portal with its sandbox (which answers 429 above the budgets) on the
benchmark's PostgreSQL database. A verified group and one asset are made through the real client
(the phone step played by ``sandbox.testing.complete_session``). Then ``PROCESSES`` client
processes x ``THREADS`` threads call GetAsset and ListAssets as fast as the limiter allows, once
with the Redis backend and once with the SQLite-file backend. Targets: no 429 seen by the client
or counted by the sandbox, and a steady-state rate of at least ``MIN_SHARE`` of each budget.

Without HTTP, the limiter's own cost per granted acquire is timed for both backends, at a steady
100/s budget with a full window (an injected clock that advances one slot per call).

Last, the machine's capacity: the same load against a second server whose GetAsset budget
(``CAPACITY_BUDGET``) never binds, to show which budgets this machine can sustain at all.
"""

from __future__ import annotations

import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.environment import DEFAULT_REDIS_URL, ROOT
from benchmarks.results import Result

NAME = "rate limiter"
PROCESSES = 4
# Per process: GetAsset threads keep its 100/s budget busy; one thread is plenty for 10/s.
THREADS = {"GetAsset": 3, "ListAssets": 1}
DURATION = 10.0
# The first seconds spend the burst a fresh window allows; the rate is measured after it.
WARMUP = 2.0
MIN_SHARE = 0.80
OVERHEAD_CALLS = 2000
OVERHEAD_TARGET_US = 1000
CAPACITY_BUDGET = "1000/1"


@contextmanager
def file_server(directory: Path) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 from which the sandbox downloads the setup's image."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(directory), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_verified_asset(workdir: Path) -> tuple[str, str]:
    """A LivenessFace group and an Active image in it, made over HTTP by the real client."""
    from assets.upstream import AnyfastClient
    from sandbox.samples import make_image
    from sandbox.testing import complete_session

    client = AnyfastClient()
    started = client.create_visual_validate_session("http://127.0.0.1/callback")
    complete_session(started.byted_token, identity="ada")
    group_id = client.get_visual_validate_result(started.byted_token).group_id
    files = workdir / "served"
    files.mkdir(exist_ok=True)
    (files / "portrait.jpg").write_bytes(make_image(face="ada"))
    with file_server(files) as url:
        created = client.create_asset(group_id, "bench-portrait", "Image", f"{url}/portrait.jpg")
    asset = client.get_asset(created.id)
    assert asset.status == "Active", asset
    return group_id, created.id


def clear_redis_limits(redis_url: str) -> None:
    import redis

    from assets.upstream.ratelimit import REDIS_PREFIX

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    for action in THREADS:
        client.delete(REDIS_PREFIX + action)


def load(backend_env: dict[str, str], *, group_id: str, asset_id: str) -> dict[str, Any]:
    """Run the client processes together; their reports merged per action."""
    start_at = time.time() + 3.0  # time for every interpreter to start and set up Django
    config = {
        "threads": THREADS,
        "asset_id": asset_id,
        "group_id": group_id,
        "start_at": start_at,
        "duration": DURATION,
    }
    workers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "benchmarks.load_worker", json.dumps(config)],
            cwd=ROOT,
            env={**os.environ, **backend_env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    merged: dict[str, Any] = {}
    for worker in workers:
        out, err = worker.communicate(timeout=DURATION + 60)
        if worker.returncode != 0:
            raise RuntimeError(f"load worker failed: {err.decode()[-2000:]}")
        for action, part in json.loads(out).items():
            mine = merged.setdefault(action, {"stamps": [], "statuses": {}, "errors": {}})
            mine["stamps"] += part["stamps"]
            for name in ("statuses", "errors"):
                for key, count in part[name].items():
                    mine[name][key] = mine[name].get(key, 0) + count
    merged["_window"] = (start_at, start_at + DURATION)
    return merged


def throughput_results(label: str, report: dict[str, Any], sandbox: dict) -> list[Result]:
    from django.conf import settings

    from assets.upstream.ratelimit import Budget

    start, end = report["_window"]
    results = []
    for action in THREADS:
        budget = Budget.parse(settings.ANYFAST_RATE_LIMITS[action])
        rate_budget = budget.count / budget.seconds
        part = report.get(action, {"stamps": [], "statuses": {}, "errors": {}})
        steady = [s for s in part["stamps"] if start + WARMUP <= s <= end]
        rate = len(steady) / (end - start - WARMUP)
        client_429 = part["statuses"].get("429", 0)
        counted = sandbox.get(action, {"calls": 0, "rate_limited": 0})
        errors = ", ".join(f"{k} {v}" for k, v in sorted(part["errors"].items()))
        results.append(
            Result(
                NAME,
                f"{label}: {action} calls/s ({len(part['stamps'])} calls, sandbox counted "
                f"{counted['calls']})",
                f"{rate:.1f} ({rate / rate_budget:.0%} of {budget.count}/{budget.seconds:g} s)",
                f">= {MIN_SHARE:.0%} of budget",
                rate >= MIN_SHARE * rate_budget,
            )
        )
        results.append(
            Result(
                NAME,
                f"{label}: {action} 429s client / sandbox"
                + (f"; errors {errors}" if errors else ""),
                f"{client_429} / {counted['rate_limited']}",
                "0 / 0",
                client_429 == 0 and counted["rate_limited"] == 0 and not errors,
            )
        )
    return results


class SteppingClock:
    """Advances ``step`` seconds per reading: a steady stream of calls at exactly that pace."""

    def __init__(self, step: float) -> None:
        self.now = time.time()
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def overhead_results(workdir: Path, redis_url: str) -> list[Result]:
    import redis

    from assets.upstream.ratelimit import (
        Backend,
        Budget,
        RateLimiter,
        RedisBackend,
        SQLiteBackend,
    )

    budget = Budget(100, 1)
    # One slot per call, a hair slower than the budget: every acquire is granted at once with
    # ~100 grants in the window, the limiter's steady state at full rate.
    step = budget.window / budget.count * 1.001

    def never_sleep(seconds: float) -> None:
        raise AssertionError(f"the overhead benchmark must never wait ({seconds} s)")

    prefix = f"bench:overhead:{uuid.uuid4().hex}:"
    backends: dict[str, Backend] = {
        "Redis": RedisBackend(
            redis.Redis.from_url(redis_url, socket_timeout=5),
            prefix=prefix,
            clock=SteppingClock(step),
        ),
        "SQLite file": SQLiteBackend(workdir / "overhead.sqlite3", clock=SteppingClock(step)),
    }
    results = []
    try:
        for label, backend in backends.items():
            limiter = RateLimiter({"GetAsset": budget}, backend, sleep=never_sleep)
            durations = []
            for _ in range(OVERHEAD_CALLS):
                started = time.perf_counter()
                limiter.acquire("GetAsset")
                durations.append((time.perf_counter() - started) * 1e6)
            median = statistics.median(durations)
            p99 = statistics.quantiles(durations, n=100)[98]
            results.append(
                Result(
                    NAME,
                    f"{label} backend: acquire overhead, median (p99)",
                    f"{median:.0f} µs ({p99:.0f} µs)",
                    f"median < {OVERHEAD_TARGET_US} µs",
                    median < OVERHEAD_TARGET_US,
                )
            )
    finally:
        client = redis.Redis.from_url(redis_url, socket_timeout=5)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    return results


def run(workdir: Path, *, base_env: dict[str, str], port: int) -> list[Result]:
    from django.conf import settings

    from sandbox import counters
    from sandbox.servers import free_port, gunicorn

    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    results = overhead_results(workdir, redis_url)
    budgets = ", ".join(f"{a} {settings.ANYFAST_RATE_LIMITS[a]}" for a in THREADS)
    threads = sum(THREADS.values())
    print(f"  rate limiter: budgets {budgets}; {PROCESSES} processes x {threads} threads")
    with gunicorn(base_env, port=port, workers=2, threads=8):
        group_id, asset_id = make_verified_asset(workdir)
        backends = {
            "Redis": {"ANYFAST_RATE_LIMIT_REDIS_URL": redis_url},
            "SQLite file": {
                "ANYFAST_RATE_LIMIT_REDIS_URL": "",
                "ANYFAST_RATE_LIMIT_FILE": str(workdir / "limits-load.sqlite3"),
            },
        }
        for label, backend_env in backends.items():
            clear_redis_limits(redis_url)
            time.sleep(1.5)  # let the sandbox's buckets refill after the setup or the last run
            counters.reset()
            report = load(backend_env, group_id=group_id, asset_id=asset_id)
            results += throughput_results(label, report, counters.snapshot())

    capacity_port = free_port()
    capacity_env = {
        "ANYFAST_RATE_GET_ASSET": CAPACITY_BUDGET,
        "SANDBOX_RATE_LIMITS": f"GetAsset={CAPACITY_BUDGET},ListAssets=10/1",
        "PORTAL_PUBLIC_URL": f"http://127.0.0.1:{capacity_port}",
        "ANYFAST_BASE_URL": f"http://127.0.0.1:{capacity_port}/sandbox",
    }
    with gunicorn({**base_env, **capacity_env}, port=capacity_port, workers=2, threads=8):
        clear_redis_limits(redis_url)
        time.sleep(1.5)
        report = load(
            {**capacity_env, "ANYFAST_RATE_LIMIT_REDIS_URL": redis_url},
            group_id=group_id,
            asset_id=asset_id,
        )
    start, end = report["_window"]
    steady = [s for s in report["GetAsset"]["stamps"] if start + WARMUP <= s <= end]
    results.append(
        Result(
            NAME,
            f"capacity: GetAsset calls/s with a budget that never binds ({CAPACITY_BUDGET})",
            f"{len(steady) / (end - start - WARMUP):.1f}",
        )
    )
    return results
