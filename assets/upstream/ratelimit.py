"""Keep the whole deployment within the upstream's per-action request budgets.

BytePlus documents account-wide limits per Action (docs/upstream.md §8: GetAsset 100/s, CreateAsset
300/min, …), so every worker process on every host must share one count: the web server, the
Celery workers and beat together. ``settings.ANYFAST_RATE_LIMITS`` gives them as
``"<count>/<seconds>"``.

Algorithm — a sliding-window log, the same in both backends: each granted call leaves its
timestamp; a call is granted when fewer than ``count`` timestamps lie in the last ``window``
seconds, otherwise the caller learns how long until the oldest one leaves the window. The check
and the insert happen in one atomic step (a Lua script in Redis, a ``BEGIN IMMEDIATE``
transaction in SQLite), with the clock read *inside* that step, so timestamps are recorded in
order and no window ever holds ``count + 1`` grants, however many processes race.

Safety margin: the window used is ``seconds * 1.05`` (``SAFETY_MARGIN``). The upstream counts
arrivals on its own clock, and a request leaves here a little after its slot was granted
(scheduling, connection setup, network): the 5 % (50 ms on a 1-second window) absorbs that jitter
so that what the server sees stays within budget too. The cost is ~5 % of the documented rate.

Backends: Redis when ``ANYFAST_RATE_LIMIT_REDIS_URL`` is set (shared by every host; uses the
Redis server's clock), else a SQLite file at ``ANYFAST_RATE_LIMIT_FILE`` (shared by the processes
of one host: production with several hosts must use Redis). ``ANYFAST_RATE_LIMIT_ENABLED=false``
disables limiting. pyrate-limiter was considered; its buckets do not give this one atomic
check-and-record across processes on both stores with less code than this.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from .errors import LocalRateLimitExceeded, RateLimiterUnavailable

logger = logging.getLogger(__name__)

SAFETY_MARGIN = 0.05
DEFAULT_MAX_WAIT = 30.0
REDIS_PREFIX = "anyfast:ratelimit:"


@dataclass(frozen=True)
class Budget:
    """``count`` calls per ``seconds``; ``window`` is the period enforced, margin included."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"3/1"`` → 3 calls per second; ``"300/60"`` → 300 per minute."""
        count, _, seconds = text.partition("/")
        try:
            budget = cls(int(count), float(seconds or 1))
        except ValueError as exc:
            raise ValueError(f"rate limit {text!r} is not '<count>/<seconds>'") from exc
        if budget.count < 1 or budget.seconds <= 0:
            raise ValueError(f"rate limit {text!r} must allow at least one call per period")
        return budget

    @property
    def window(self) -> float:
        return self.seconds * (1 + SAFETY_MARGIN)


def sliding_window_wait(timestamps: list[float], now: float, count: int, window: float) -> float:
    """The one algorithm: 0 when a call may go now, else the seconds until one may.

    ``timestamps`` are the granted calls still inside ``(now - window, now]`` (or later, when
    another process's clock ran ahead), oldest first.
    """
    if len(timestamps) < count:
        return 0.0
    # The (len - count + 1)-th oldest must leave before the window has room again.
    return max(timestamps[len(timestamps) - count] + window - now, 1e-4)


class Backend(Protocol):
    def try_acquire(self, action: str, count: int, window: float) -> float:
        """Atomically: record a call and return 0.0 if the budget allows it now, else record
        nothing and return the seconds to wait before asking again."""
        ...

    def describe(self) -> str: ...


class MemoryBackend:
    """One process only (tests, single-process tools). ``clock`` is injectable."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}

    def try_acquire(self, action: str, count: int, window: float) -> float:
        with self._lock:
            now = self.clock()
            calls = self._calls.setdefault(action, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            while calls and calls[-1] > now + window:  # from a clock that went back
                calls.pop()
            wait = sliding_window_wait(list(calls), now, count, window)
            if wait == 0.0:
                calls.append(now)
            return wait

    def describe(self) -> str:
        return "memory (this process only)"


class SQLiteBackend:
    """A SQLite file shared by every process of one host.

    ``BEGIN IMMEDIATE`` takes the database's write lock before reading, so the read-decide-insert
    step of concurrent processes is serialised; the clock is read after the lock is held.
    """

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread and per process (a connection must not cross a fork).
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        # Switching a new file to WAL answers "database is locked" at once, without waiting for
        # the busy timeout, when another process does the same: set the file up under a lock.
        with open(self.path.with_name(self.path.name + ".setup-lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            # WAL: readers never block the writer; losing the last grants on an OS crash is
            # harmless.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS grants (action TEXT NOT NULL, at REAL NOT NULL)"
            )
            conn.execute("CREATE INDEX IF NOT EXISTS grants_action_at ON grants (action, at)")
        conn.execute("PRAGMA synchronous=OFF")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def try_acquire(self, action: str, count: int, window: float) -> float:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            now = self.clock()
            # Grants older than the window are spent; grants more than a window ahead can only
            # come from a clock that has since gone back (NTP step, a test's time travel) and
            # would otherwise block callers until real time catches up with them.
            conn.execute(
                "DELETE FROM grants WHERE action = ? AND (at <= ? OR at > ?)",
                (action, now - window, now + window),
            )
            rows = conn.execute(
                "SELECT at FROM grants WHERE action = ? ORDER BY at", (action,)
            ).fetchall()
            wait = sliding_window_wait([row[0] for row in rows], now, count, window)
            if wait == 0.0:
                conn.execute("INSERT INTO grants (action, at) VALUES (?, ?)", (action, now))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return wait

    def describe(self) -> str:
        return f"SQLite file {self.path}"


# The same sliding-window log as ``sliding_window_wait`` (and the same cleanup as the SQLite
# backend), run atomically inside Redis. Times are integer microseconds from the Redis server's
# clock (``TIME``), so every host shares one clock; ARGV[4], when given, replaces it (tests inject
# a clock).
_REDIS_SCRIPT = """
local key, count, window, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local now
if ARGV[4] ~= '' then
  now = tonumber(ARGV[4])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
-- Lua would pass numbers as '%.14g' strings (0.1 ms steps at today's epoch): format exactly.
local function us(x) return string.format('%.0f', x) end
redis.call('ZREMRANGEBYSCORE', key, '-inf', us(now - window))
redis.call('ZREMRANGEBYSCORE', key, '(' .. us(now + window), '+inf')
local n = redis.call('ZCARD', key)
if n < count then
  redis.call('ZADD', key, us(now), member)
  redis.call('PEXPIRE', key, math.ceil(window / 1000) + 1000)
  return 0
end
local edge = redis.call('ZRANGE', key, n - count, n - count, 'WITHSCORES')
return math.max(tonumber(edge[2]) + window - now, 100)
"""


class RedisBackend:
    """Redis shared by every host: one sorted set of grant times per action."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = REDIS_PREFIX,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self._script = client.register_script(_REDIS_SCRIPT)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisBackend:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, **kwargs)

    def try_acquire(self, action: str, count: int, window: float) -> float:
        now = "" if self.clock is None else str(int(self.clock() * 1_000_000))
        wait_us = self._script(
            keys=[self.prefix + action],
            args=[count, int(window * 1_000_000), uuid.uuid4().hex, now],
        )
        return int(wait_us) / 1_000_000

    def describe(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs
        # Host, port and db only: a Redis URL may carry a password.
        return f"Redis {kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}"


class RateLimiter:
    """Blocking per-action limiter over a shared ``Backend``.

    ``acquire(action)`` returns once a call may be made (the seconds it waited), or raises
    ``LocalRateLimitExceeded`` (a transient error) when no slot frees up within ``max_wait``.
    Actions without a budget are never limited.
    """

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        backend: Backend,
        *,
        max_wait: float = DEFAULT_MAX_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budgets = dict(budgets)
        self.backend = backend
        self.max_wait = max_wait
        self.sleep = sleep
        self.monotonic = monotonic

    @property
    def enabled(self) -> bool:
        return True

    def acquire(self, action: str, *, max_wait: float | None = None) -> float:
        budget = self.budgets.get(action)
        if budget is None:
            return 0.0
        limit = self.max_wait if max_wait is None else max_wait
        started = self.monotonic()
        while True:
            try:
                wait = self.backend.try_acquire(action, budget.count, budget.window)
            except (sqlite3.Error, OSError, redis.RedisError) as exc:
                raise RateLimiterUnavailable(
                    f"{self.backend.describe()}: {type(exc).__name__}: {exc}",
                    action=action,
                    code="RateLimiterUnavailable",
                ) from exc
            waited = self.monotonic() - started
            if wait <= 0:
                if waited > 1:
                    logger.info("rate limiter: %s waited %.1f s for a slot", action, waited)
                return waited
            if waited + wait > limit:
                raise LocalRateLimitExceeded(
                    f"no {action} slot within {limit:.0f} s "
                    f"(budget {budget.count}/{budget.seconds:g} s)",
                    action=action,
                    code="LocalRateLimit",
                )
            # A little jitter so processes woken for the same slot do not collide every time.
            self.sleep(wait + random.uniform(0, min(wait, 0.005)))  # noqa: S311

    def describe(self) -> str:
        return self.backend.describe()


class NullRateLimiter:
    """Limiting disabled (``ANYFAST_RATE_LIMIT_ENABLED=false``)."""

    enabled = False

    def acquire(self, action: str, *, max_wait: float | None = None) -> float:
        return 0.0

    def describe(self) -> str:
        return "disabled"


_backends: dict[tuple[str, str, str], Backend] = {}
_backends_lock = threading.Lock()


def parse_budgets(limits: Mapping[str, str]) -> dict[str, Budget]:
    return {action: Budget.parse(text) for action, text in limits.items()}


def rate_limiter_from_settings() -> RateLimiter | NullRateLimiter:
    """The limiter the settings describe; backends are shared within the process."""
    from django.conf import settings

    if not settings.ANYFAST_RATE_LIMIT_ENABLED:
        return NullRateLimiter()
    redis_url = settings.ANYFAST_RATE_LIMIT_REDIS_URL
    prefix = settings.ANYFAST_RATE_LIMIT_REDIS_PREFIX
    key = (
        ("redis", redis_url, prefix)
        if redis_url
        else ("sqlite", str(settings.ANYFAST_RATE_LIMIT_FILE), "")
    )
    with _backends_lock:
        backend = _backends.get(key)
        if backend is None:
            backend = (
                RedisBackend.from_url(redis_url, prefix=prefix)
                if redis_url
                else SQLiteBackend(settings.ANYFAST_RATE_LIMIT_FILE)
            )
            _backends[key] = backend
    return RateLimiter(
        parse_budgets(settings.ANYFAST_RATE_LIMITS),
        backend,
        max_wait=float(getattr(settings, "ANYFAST_RATE_LIMIT_MAX_WAIT", DEFAULT_MAX_WAIT)),
    )
