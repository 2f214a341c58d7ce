"""Benchmark 1: the deployment-wide rate limiter against the strict sandbox under real load.

gunicorn serves the portal with its sandbox on the benchmark's PostgreSQL database. The sandbox
counts calls as strictly as an upstream may (at most ``count`` in any ``seconds`` on its own
clock, no burst allowance) and delays each call by a random 0 to ``JITTER_MS`` milliseconds
before counting it, as a network would. Two verified groups and an asset are made through the
real client (the phone step played by ``sandbox.testing.complete_session``). Then ``PROCESSES``
client processes x ``THREADS`` threads call GetAsset, ListAssets and CreateAsset as fast as the
limiter allows, once with the Redis backend and once with the SQLite-file backend. Targets: no
429 seen by the client or counted by the sandbox, and a steady rate of at least ``MIN_SHARE`` of
each budget (CreateAsset: its 300/min flowing at 5/s, not in bursts).

Without HTTP, the limiter's own cost per granted acquire is timed for both backends, at a steady
100/s budget (an injected clock that advances one interval per call).

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
# Per process: GetAsset threads keep its budget busy; one thread is plenty for the others.
THREADS = {"GetAsset": 3, "ListAssets": 1, "CreateAsset": 1}
DURATION = 12.0
# The first second lets every process start; the rate is measured after it.
WARMUP = 1.0
JITTER_MS = 100
MIN_SHARE = 0.90
OVERHEAD_CALLS = 2000
OVERHEAD_TARGET_US = 1000
CAPACITY_BUDGET = "1000/1"


@contextmanager
def file_server(directory: Path) -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 from which the sandbox downloads uploaded images."""

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


def verified_group() -> str:
    """A LivenessFace group made over HTTP by the real client."""
    from sandbox.testing import complete_session
    from upstream import AnyfastClient

    with AnyfastClient() as client:
        started = client.create_visual_validate_session("http://127.0.0.1/callback")
        complete_session(started.byted_token, identity="ada")
        return client.get_visual_validate_result(started.byted_token).group_id


def make_asset(group_id: str, image_url: str) -> str:
    """An Active image in ``group_id``, made over HTTP by the real client."""
    from upstream import AnyfastClient

    with AnyfastClient() as client:
        created = client.create_asset(group_id, "bench-portrait", "Image", image_url)
        asset = client.get_asset(created.id)
    assert asset.status == "Active", asset
    return created.id


def clear_redis_limits(redis_url: str) -> None:
    import redis

    from upstream.ratelimit import REDIS_PREFIX

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    for action in THREADS:
        client.delete(REDIS_PREFIX + action)


def load(backend_env: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
    """Run the client processes together; their reports merged per action."""
    workers = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "benchmarks.load_worker",
                json.dumps({**config, "duration": DURATION}),
            ],
            cwd=ROOT,
            env={**os.environ, **backend_env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    # Start together once every interpreter has set Django up, however long that took.
    for worker in workers:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            raise RuntimeError(f"load worker failed to start: {worker.communicate()[1][-2000:]}")
    start_at = time.time() + 0.5
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write(f"{start_at}\n")
        worker.stdin.flush()
    merged: dict[str, Any] = {}
    for worker in workers:
        out, err = worker.communicate(timeout=DURATION + 60)
        if worker.returncode != 0:
            raise RuntimeError(f"load worker failed: {err[-2000:]}")
        for action, part in json.loads(out).items():
            mine = merged.setdefault(action, {"stamps": [], "statuses": {}, "errors": {}})
            mine["stamps"] += part["stamps"]
            for name in ("statuses", "errors"):
                for key, count in part[name].items():
                    mine[name][key] = mine[name].get(key, 0) + count
    merged["_window"] = (start_at, start_at + DURATION)
    return merged


def steady_rate(stamps: list[float], start: float, end: float) -> float:
    """Calls per second between the first and the last call sent after the warm-up."""
    steady = sorted(s for s in stamps if start + WARMUP <= s <= end)
    if len(steady) < 2:
        return 0.0
    return (len(steady) - 1) / (steady[-1] - steady[0])


def max_in_one_second(stamps: list[float]) -> int:
    ordered = sorted(stamps)
    best, first = 0, 0
    for last, stamp in enumerate(ordered):
        while ordered[first] <= stamp - 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def throughput_results(label: str, report: dict[str, Any], sandbox: dict) -> list[Result]:
    from upstream.ratelimit import budgets_from_settings

    budgets = budgets_from_settings()
    start, end = report["_window"]
    results = []
    for action in THREADS:
        budget = budgets[action]
        per_second = budget.count / budget.seconds
        part = report.get(action, {"stamps": [], "statuses": {}, "errors": {}})
        rate = steady_rate(part["stamps"], start, end)
        client_429 = part["statuses"].get("429", 0)
        counted = sandbox.get(action, {"calls": 0, "rate_limited": 0})
        errors = ", ".join(f"{k} {v}" for k, v in sorted(part["errors"].items()))
        results.append(
            Result(
                NAME,
                f"{label}: {action} calls/s ({len(part['stamps'])} calls, sandbox counted "
                f"{counted['calls']}; at most {max_in_one_second(part['stamps'])} in 1 s)",
                f"{rate:.2f} ({rate / per_second:.1%} of {budget} s)",
                f">= {MIN_SHARE:.0%} of budget",
                rate >= MIN_SHARE * per_second,
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

    from upstream.ratelimit import (
        Backend,
        Budget,
        RateLimiter,
        RedisBackend,
        SQLiteBackend,
    )

    budget = Budget(100, 1)
    # One interval per call, a hair slower than the budget: every acquire is granted at once,
    # the limiter's steady state at full rate.
    step = budget.interval * 1.001

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
            limiter = RateLimiter({"GetAsset": budget}, backend, max_wait=1, sleep=never_sleep)
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
    from sandbox.samples import make_image
    from sandbox.servers import free_port, gunicorn

    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    results = overhead_results(workdir, redis_url)
    overrides = ", ".join(f"{a}={b}" for a, b in settings.ANYFAST_RATE_LIMITS.items())
    threads = sum(THREADS.values())
    print(
        f"  rate limiter: documented budgets, overrides {overrides or 'none'}; "
        f"{PROCESSES} processes x {threads} threads; {JITTER_MS} ms latency jitter"
    )
    files = workdir / "served"
    files.mkdir(exist_ok=True)
    (files / "portrait.jpg").write_bytes(make_image(face="ada"))
    server_env = {**base_env, "SANDBOX_LATENCY_JITTER_MS": str(JITTER_MS)}
    with gunicorn(server_env, port=port, workers=2, threads=8), file_server(files) as files_url:
        image_url = f"{files_url}/portrait.jpg"
        group_id = verified_group()
        config = {
            "threads": THREADS,
            "asset_id": make_asset(group_id, image_url),
            "group_id": group_id,
            # Uploads go to a group of their own, so that ListAssets keeps listing one asset.
            "upload_group_id": verified_group(),
            "image_url": image_url,
        }
        backends = {
            "Redis": {"ANYFAST_RATE_LIMIT_REDIS_URL": redis_url},
            "SQLite file": {
                "ANYFAST_RATE_LIMIT_REDIS_URL": "",
                "ANYFAST_RATE_LIMIT_FILE": str(workdir / "limits-load.sqlite3"),
            },
        }
        for label, backend_env in backends.items():
            clear_redis_limits(redis_url)
            time.sleep(1.5)  # let the sandbox's windows empty after the setup or the last run
            counters.reset()
            report = load(backend_env, config)
            results += throughput_results(label, report, counters.snapshot())

        capacity_port = free_port()
        capacity_env = {
            "ANYFAST_RATE_LIMITS": f"GetAsset={CAPACITY_BUDGET}",
            "SANDBOX_RATE_LIMITS": f"GetAsset={CAPACITY_BUDGET}",
            "SANDBOX_LATENCY_JITTER_MS": "0",
            "PORTAL_PUBLIC_URL": f"http://127.0.0.1:{capacity_port}",
            "ANYFAST_BASE_URL": f"http://127.0.0.1:{capacity_port}/sandbox",
        }
        with gunicorn({**base_env, **capacity_env}, port=capacity_port, workers=2, threads=8):
            clear_redis_limits(redis_url)
            time.sleep(1.5)
            report = load(
                {**capacity_env, "ANYFAST_RATE_LIMIT_REDIS_URL": redis_url},
                {**config, "threads": {"GetAsset": THREADS["GetAsset"]}},
            )
    start, end = report["_window"]
    results.append(
        Result(
            NAME,
            f"capacity: GetAsset calls/s with a budget that never binds ({CAPACITY_BUDGET})",
            f"{steady_rate(report['GetAsset']['stamps'], start, end):.1f}",
        )
    )
    return results
