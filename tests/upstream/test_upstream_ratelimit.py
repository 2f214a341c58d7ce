"""The deployment-wide rate limiter: evenly spaced grants with an injected clock, then real
processes sharing one schedule."""

from __future__ import annotations

import itertools
import textwrap
import uuid
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.conftest import TEST_REDIS_URL, redis_or_unavailable
from tests.upstream_helpers import FakeClock, max_in_any_window, run_together
from upstream import (
    LocalRateLimitExceeded,
    NullRateLimiter,
    RateLimiter,
    TransientUpstreamError,
)
from upstream.ratelimit import (
    DOCUMENTED_BUDGETS,
    NETWORK_MARGIN,
    Budget,
    MemoryBackend,
    RedisBackend,
    SQLiteBackend,
    budgets_with,
    rate_limiter_from_settings,
)

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


# Redis keeps times in whole microseconds.
MICROSECONDS = 1e-5


def gaps_between(stamps: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(stamps)]


def limiter(backend, clock: FakeClock, budgets: dict[str, Budget], max_wait: float = 30):
    return RateLimiter(budgets, backend, max_wait=max_wait, sleep=clock.sleep, monotonic=clock)


def test_budget_parses_count_per_seconds_and_spaces_calls_with_the_network_margin():
    assert Budget.parse("300/60") == Budget(300, 60.0)
    assert Budget.parse("3/1").interval == pytest.approx((1 + NETWORK_MARGIN) / 3)
    assert Budget(300, 60).interval == pytest.approx((60 + NETWORK_MARGIN) / 300)
    for bad in ("", "x/1", "0/1", "3/0"):
        with pytest.raises(ValueError):
            Budget.parse(bad)


def test_overrides_replace_entries_of_the_documented_table_and_misspelt_actions_are_refused():
    budgets = budgets_with({"GetAsset": "40/1"})

    assert budgets["GetAsset"] == Budget(40, 1)
    assert budgets["CreateAsset"] == DOCUMENTED_BUDGETS["CreateAsset"] == Budget(300, 60)
    with pytest.raises(ValueError, match="GetAssets"):
        budgets_with({"GetAssets": "40/1"})
    with pytest.raises(ValueError):
        budgets_with({"GetAsset": "forty"})


def test_grants_are_spaced_one_interval_apart_and_a_burst_request_waits(backend, clock):
    budget = Budget(3, 1)
    limiter_ = limiter(backend, clock, {"GetAsset": budget})
    granted: list[float] = []

    for _ in range(10):
        limiter_.acquire("GetAsset")
        granted.append(clock.now)

    gaps = gaps_between(granted)
    assert gaps == pytest.approx([budget.interval] * 9, abs=MICROSECONDS)
    # The first goes at once; every request of the burst after it waits for its own slot.
    assert clock.sleeps == pytest.approx([budget.interval] * 9, abs=MICROSECONDS)
    assert max_in_any_window(granted, 1.0) == 3


def test_create_asset_flows_at_five_a_second_not_its_minute_budget_at_once(backend, clock):
    limiter_ = limiter(backend, clock, DOCUMENTED_BUDGETS)
    granted: list[float] = []

    for _ in range(30):
        limiter_.acquire("CreateAsset")
        granted.append(clock.now)

    assert max_in_any_window(granted, 1.0) == 5
    assert granted[-1] - granted[0] == pytest.approx(
        29 * (60 + NETWORK_MARGIN) / 300, abs=30 * MICROSECONDS
    )


def test_a_caller_waking_late_for_its_slot_postpones_the_slots_not_yet_taken(backend, clock):
    budget = Budget(10, 1)
    late = 0.04  # a busy machine ran the caller 40 ms after its slot
    sleeps = iter([late, 0.0, 0.0])

    def oversleep(seconds: float) -> None:
        clock.sleep(seconds + next(sleeps))

    limiter_ = RateLimiter(
        {"ListAssets": budget}, backend, max_wait=30, sleep=oversleep, monotonic=clock
    )
    limiter_.acquire("ListAssets")
    first = clock.now
    limiter_.acquire("ListAssets")  # sent 40 ms after its slot
    second = clock.now
    limiter_.acquire("ListAssets")

    # The late call is closer to the first, but the next keeps a whole interval from it.
    assert second - first == pytest.approx(budget.interval + late, abs=MICROSECONDS)
    assert clock.now - second == pytest.approx(budget.interval, abs=2 * MICROSECONDS)


def test_an_idle_action_earns_no_burst(backend, clock):
    budget = Budget(10, 1)
    limiter_ = limiter(backend, clock, {"ListAssets": budget})
    limiter_.acquire("ListAssets")
    clock.now += 3600  # idle for an hour

    limiter_.acquire("ListAssets")
    limiter_.acquire("ListAssets")

    assert clock.sleeps == pytest.approx([budget.interval], abs=MICROSECONDS)


def test_limiter_gives_up_at_once_when_its_slot_is_beyond_the_maximum_wait(backend, clock):
    budget = Budget(2, 60)
    limiter_ = limiter(backend, clock, {"CreateAsset": budget}, max_wait=5)
    limiter_.acquire("CreateAsset")

    with pytest.raises(LocalRateLimitExceeded) as caught:
        limiter_.acquire("CreateAsset")

    assert isinstance(caught.value, TransientUpstreamError)
    assert clock.sleeps == []  # it knew at once that no slot would come within 5 s
    # The refused request took no slot: the next one willing to wait gets the first free one.
    assert limiter_.acquire("CreateAsset", max_wait=60) == pytest.approx(
        budget.interval, abs=MICROSECONDS
    )


def test_actions_are_counted_separately_and_unbudgeted_actions_are_free(clock, tmp_path):
    backend = SQLiteBackend(tmp_path / "limits.sqlite3", clock)
    limiter_ = limiter(backend, clock, {"GetAsset": Budget(1, 1), "ListAssets": Budget(1, 1)})

    for action in ("GetAsset", "ListAssets", "UnknownAction", "UnknownAction"):
        assert limiter_.acquire(action) == 0

    assert clock.sleeps == []


def test_slots_taken_before_the_clock_went_back_do_not_block(backend, clock):
    budget = Budget(1, 1)
    limiter_ = limiter(backend, clock, {"GetAsset": budget}, max_wait=budget.interval)
    clock.now += 3600
    limiter_.acquire("GetAsset")  # e.g. during a test's time travel
    clock.now -= 3600

    # Not blocked for an hour; only the spacing after that last grant holds.
    assert limiter_.acquire("GetAsset") == pytest.approx(budget.interval, abs=MICROSECONDS)


def test_sqlite_slots_are_shared_by_every_limiter_on_the_same_file(clock, tmp_path):
    path = tmp_path / "limits.sqlite3"
    first = limiter(SQLiteBackend(path, clock), clock, {"GetAsset": Budget(2, 1)}, max_wait=0)
    second = limiter(SQLiteBackend(path, clock), clock, {"GetAsset": Budget(2, 1)}, max_wait=0)

    first.acquire("GetAsset")
    with pytest.raises(LocalRateLimitExceeded):
        second.acquire("GetAsset")


def test_limiter_from_settings(settings, tmp_path):
    settings.ANYFAST_RATE_LIMIT_ENABLED = False
    assert isinstance(rate_limiter_from_settings(), NullRateLimiter)

    settings.ANYFAST_RATE_LIMIT_ENABLED = True
    settings.ANYFAST_RATE_LIMIT_REDIS_URL = ""
    settings.ANYFAST_RATE_LIMIT_FILE = tmp_path / "limits.sqlite3"
    settings.ANYFAST_RATE_LIMITS = {"GetAsset": "40/1"}
    settings.ANYFAST_RATE_LIMIT_MAX_WAIT = 12.5
    limiter_ = rate_limiter_from_settings()
    assert isinstance(limiter_, RateLimiter)
    assert isinstance(limiter_.backend, SQLiteBackend)
    assert limiter_.budgets["GetAsset"] == Budget(40, 1)
    assert limiter_.budgets["CreateAsset"] == Budget(300, 60)
    assert limiter_.max_wait == 12.5

    settings.ANYFAST_RATE_LIMIT_REDIS_URL = REDIS_URL
    limiter_ = rate_limiter_from_settings()
    assert isinstance(limiter_, RateLimiter) and isinstance(limiter_.backend, RedisBackend)
    assert REDIS_URL.rsplit("/", 1)[-1] in limiter_.describe()

    settings.ANYFAST_RATE_LIMITS = {"GetAssets": "40/1"}
    with pytest.raises(ImproperlyConfigured, match="ANYFAST_RATE_LIMITS"):
        rate_limiter_from_settings()


# --- Real processes, real clock ---------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import json, sys, time
    from upstream.ratelimit import Budget, RateLimiter, RedisBackend, SQLiteBackend

    kind, location, prefix, budget, duration = sys.argv[1:6]
    if kind == "redis":
        backend = RedisBackend.from_url(location, prefix=prefix)
    else:
        backend = SQLiteBackend(location)
    limiter = RateLimiter({"GetAsset": Budget.parse(budget)}, backend, max_wait=10)
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    stamps = []
    while time.time() < start_at + float(duration):
        limiter.acquire("GetAsset")
        stamps.append(time.time())
    print(json.dumps(stamps))
    """
)
BUDGET = Budget(4, 1)
SECONDS = 2.5
# Real processes on a shared machine wake a little late now and then; spacing that misses the
# interval by more than this is the limiter's fault (the old sliding window granted 4 at once).
TOLERANCE = 0.05


def _hammer(kind: str, location: str, prefix: str, *, processes: int = 3) -> list[float]:
    """Run ``processes`` interpreters acquiring GetAsset slots at ``BUDGET`` together."""
    outputs = run_together(
        _WORKER,
        kind,
        location,
        prefix,
        str(BUDGET),
        str(SECONDS),
        processes=processes,
    )
    stamps = sorted(stamp for mine in outputs for stamp in mine)
    gaps = gaps_between(stamps)
    print(
        f"{kind}: {len(stamps)} grants, per process {[len(mine) for mine in outputs]}, "
        f"smallest gap {min(gaps):.3f} s (interval {BUDGET.interval:.3f} s)"
    )
    return stamps


def _assert_spaced(stamps: list[float]) -> None:
    gaps = gaps_between(stamps)
    # No two grants closer than the interval, across all processes together ...
    assert min(gaps) >= BUDGET.interval - TOLERANCE
    # ... while every slot is used: one grant per interval from the first to the last.
    assert len(stamps) >= 6
    assert (stamps[-1] - stamps[0]) / (len(stamps) - 1) <= BUDGET.interval + TOLERANCE


@pytest.mark.slow
def test_file_backend_spaces_grants_across_processes(tmp_path):
    _assert_spaced(_hammer("sqlite", str(tmp_path / "limits.sqlite3"), ""))


@pytest.mark.slow
def test_redis_backend_spaces_grants_across_processes():
    client = redis_or_unavailable(REDIS_URL)
    prefix = f"test:{uuid.uuid4().hex}:"
    try:
        stamps = _hammer("redis", REDIS_URL, prefix)
    finally:
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)
    _assert_spaced(stamps)
