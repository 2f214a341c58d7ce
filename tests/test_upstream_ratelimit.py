"""The deployment-wide rate limiter: the window with an injected clock, then real processes."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import pytest

from assets.upstream import LocalRateLimitExceeded, NullRateLimiter, RateLimiter
from assets.upstream.ratelimit import (
    SAFETY_MARGIN,
    Budget,
    MemoryBackend,
    RedisBackend,
    SQLiteBackend,
    rate_limiter_from_settings,
    sliding_window_wait,
)
from tests.conftest import TEST_REDIS_URL, redis_or_unavailable
from tests.upstream_helpers import FakeClock, max_in_any_window, run_together

REDIS_URL = TEST_REDIS_URL


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def backend(request, clock: FakeClock, tmp_path: Path):
    if request.param == "memory":
        yield MemoryBackend(clock)
        return
    if request.param == "sqlite":
        yield SQLiteBackend(tmp_path / "limits.sqlite3", clock)
        return
    client = redis_or_unavailable(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    yield RedisBackend(client, prefix=prefix, clock=clock)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


# --- The algorithm with an injected clock -----------------------------------------------------


def test_budget_parses_count_per_seconds():
    assert Budget.parse("300/60") == Budget(300, 60.0)
    assert Budget.parse("3/1").window == pytest.approx(1 + SAFETY_MARGIN)
    for bad in ("", "x/1", "0/1", "3/0"):
        with pytest.raises(ValueError):
            Budget.parse(bad)


def test_sliding_window_wait_counts_from_the_oldest_that_must_leave():
    assert sliding_window_wait([], 10.0, 2, 1.0) == 0.0
    assert sliding_window_wait([9.5], 10.0, 2, 1.0) == 0.0
    assert sliding_window_wait([9.5, 9.8], 10.0, 2, 1.0) == pytest.approx(0.5)
    # More grants than the budget (the budget was lowered): wait for enough of them to leave.
    assert sliding_window_wait([9.2, 9.5, 9.8], 10.0, 2, 1.0) == pytest.approx(0.5)


def test_limiter_grants_the_budget_then_waits_for_the_window_to_slide(backend, clock):
    limiter = RateLimiter({"GetAsset": Budget(3, 1)}, backend, sleep=clock.sleep, monotonic=clock)
    granted: list[float] = []

    for _ in range(10):
        limiter.acquire("GetAsset")
        granted.append(clock.now)

    start = granted[0]
    assert granted[:3] == [start] * 3  # the whole budget at once
    # The 4th waits until the 1st leaves the window (1 s plus the 5 % margin), and so on.
    assert granted[3] - start >= 1.05
    assert max_in_any_window(granted, 1.05) == 3
    assert max_in_any_window(granted, 1.0) == 3
    # And it does not wait much longer than needed (sleep jitter is at most 5 ms).
    assert granted[-1] - start < 3 * 1.05 + 0.05


def test_limiter_gives_up_after_its_maximum_wait(backend, clock):
    limiter = RateLimiter(
        {"CreateAsset": Budget(2, 60)}, backend, max_wait=5, sleep=clock.sleep, monotonic=clock
    )
    limiter.acquire("CreateAsset")
    limiter.acquire("CreateAsset")

    with pytest.raises(LocalRateLimitExceeded) as caught:
        limiter.acquire("CreateAsset")

    assert caught.value.retryable
    assert clock.sleeps == []  # it knew at once that no slot would free up within 5 s


def test_actions_are_counted_separately_and_unbudgeted_actions_are_free(clock, tmp_path):
    backend = SQLiteBackend(tmp_path / "limits.sqlite3", clock)
    limiter = RateLimiter(
        {"GetAsset": Budget(1, 1), "ListAssets": Budget(1, 1)},
        backend,
        sleep=clock.sleep,
        monotonic=clock,
    )

    for action in ("GetAsset", "ListAssets", "UnknownAction", "UnknownAction"):
        assert limiter.acquire(action) == 0

    assert clock.sleeps == []


def test_grants_from_a_clock_that_went_back_do_not_block(backend, clock):
    limiter = RateLimiter({"GetAsset": Budget(1, 1)}, backend, max_wait=0)
    clock.now += 3600
    limiter.acquire("GetAsset")  # e.g. recorded during a test's time travel
    clock.now -= 3600

    limiter.acquire("GetAsset")  # not blocked for an hour


def test_sqlite_grants_are_shared_by_every_limiter_on_the_same_file(clock, tmp_path):
    path = tmp_path / "limits.sqlite3"
    first = RateLimiter({"GetAsset": Budget(2, 1)}, SQLiteBackend(path, clock), max_wait=0)
    second = RateLimiter({"GetAsset": Budget(2, 1)}, SQLiteBackend(path, clock), max_wait=0)

    first.acquire("GetAsset")
    second.acquire("GetAsset")
    with pytest.raises(LocalRateLimitExceeded):
        first.acquire("GetAsset")


def test_limiter_from_settings(settings, tmp_path):
    settings.ANYFAST_RATE_LIMIT_ENABLED = False
    assert isinstance(rate_limiter_from_settings(), NullRateLimiter)

    settings.ANYFAST_RATE_LIMIT_ENABLED = True
    settings.ANYFAST_RATE_LIMIT_REDIS_URL = ""
    settings.ANYFAST_RATE_LIMIT_FILE = tmp_path / "limits.sqlite3"
    limiter = rate_limiter_from_settings()
    assert isinstance(limiter, RateLimiter)
    assert isinstance(limiter.backend, SQLiteBackend)
    assert limiter.budgets["GetAsset"] == Budget(100, 1)
    assert limiter.budgets["CreateAsset"] == Budget(300, 60)

    settings.ANYFAST_RATE_LIMIT_REDIS_URL = "redis://localhost:6379/15"
    limiter = rate_limiter_from_settings()
    assert isinstance(limiter, RateLimiter) and isinstance(limiter.backend, RedisBackend)
    assert "localhost:6379/15" in limiter.describe()


# --- Real processes, real clock ---------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from assets.upstream.ratelimit import Budget, RateLimiter, RedisBackend, SQLiteBackend

    start_at, kind, location, prefix, budget, duration = sys.argv[1:7]
    if kind == "redis":
        backend = RedisBackend.from_url(location, prefix=prefix)
    else:
        backend = SQLiteBackend(location)
    limiter = RateLimiter({"GetAsset": Budget.parse(budget)}, backend, max_wait=10)
    time.sleep(max(0.0, float(start_at) - time.time()))
    stamps = []
    while time.time() < float(start_at) + float(duration):
        limiter.acquire("GetAsset")
        stamps.append(time.time())
    print(json.dumps(stamps))
    """
)


def _hammer(kind: str, location: str, prefix: str, *, processes: int = 3) -> list[float]:
    """Run ``processes`` interpreters acquiring GetAsset slots at "5/1" for 2 s together."""
    outputs = run_together(
        _WORKER, kind, location, prefix, "5/1", "2", processes=processes, lead=1.5
    )
    stamps = [stamp for mine in outputs for stamp in mine]
    print(
        f"{kind}: {len(stamps)} grants, per process {[len(mine) for mine in outputs]}, "
        f"max in any 1 s window {max_in_any_window(stamps, 1.0)}"
    )
    return stamps


def _assert_within_budget(stamps: list[float]) -> None:
    # Never 6 calls inside any 1-second window, across all processes together ...
    assert max_in_any_window(stamps, 1.0) <= 5
    # ... while still using the budget: 2 s at 5 per 1.05 s is 10 to 15 grants.
    assert 10 <= len(stamps) <= 15


@pytest.mark.slow
def test_file_backend_holds_the_budget_across_processes(tmp_path):
    stamps = _hammer("sqlite", str(tmp_path / "limits.sqlite3"), "")
    _assert_within_budget(stamps)


@pytest.mark.slow
def test_redis_backend_holds_the_budget_across_processes():
    client = redis_or_unavailable(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        stamps = _hammer("redis", REDIS_URL, prefix)
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    _assert_within_budget(stamps)
