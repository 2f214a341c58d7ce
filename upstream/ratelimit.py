"""Keep the whole deployment within the upstream's per-action request budgets.

BytePlus documents account-wide limits per Action (docs/upstream.md §8: GetAsset 100/s, CreateAsset
300/min, …): ``DOCUMENTED_BUDGETS`` below. Every worker process on every host must share one
count: the web server, the Celery workers and beat together. ``settings.ANYFAST_RATE_LIMITS``
overrides single entries of the table (``{"GetAsset": "40/1"}``, from the environment as
``ANYFAST_RATE_LIMITS=GetAsset=40/1,CreateAsset=120/60``).

Algorithm — evenly spaced grants (GCRA without burst, i.e. a leaky bucket used as a meter): each
action has one "next free slot" (the theoretical arrival time). A caller atomically takes the slot
``max(next free slot, now)``, moves the next free slot one ``Budget.interval`` on, and sleeps
until its slot. So no two grants of an action are closer than the interval, across every process,
and a backlog flows at exactly one grant per interval: CreateAsset at 300/60 s goes out as one
call every 0.2 s, never 300 in one second and then nothing for a minute. Waiters are served in
the order they asked, and a caller whose slot is more than ``max_wait`` away takes none and gets
``LocalRateLimitExceeded`` at once.

Why spacing, and a margin in seconds: the upstream counts arrivals on its own clock, perhaps in a
strict sliding window without any burst allowance, and each request spends a variable time on
the way there. The interval is ``(seconds + NETWORK_MARGIN) / count``, so any ``count + 1``
consecutive grants lie ``seconds + NETWORK_MARGIN`` apart and still arrive more than ``seconds``
apart as long as their delays on the way differ by less than the margin: 100 ms of network
jitter, and 5 ms for this machine's own timing (larger delays of a caller are corrected, see
below). The sliding-window
log this module used before granted a whole window's budget at once; a request of one burst
delayed by more than its 5 % margin then arrived in the upstream's window together with the next
burst, and was refused with 429. The cost is the margin: 90.5 % of a 1-second budget, 99.8 % of
CreateAsset's minute.

A caller that wakes up late for its slot (a busy machine: the scheduler runs it tens of
milliseconds after its slot) sends its call late, closer to the calls after it. When it is later
than ``LATE_TOLERANCE`` (the margin's 5 ms), it moves the next free slot on by as much, so that
the calls not yet scheduled keep their distance to it.

Atomicity: a Lua script in Redis (on the Redis server's clock), a ``BEGIN IMMEDIATE`` transaction
in SQLite, a lock in memory; the clock is read inside that step. Backends: Redis when
``ANYFAST_RATE_LIMIT_REDIS_URL`` is set (shared by every host), else a SQLite file at
``ANYFAST_RATE_LIMIT_FILE`` (the processes of one host: production with several hosts must use
Redis). ``ANYFAST_RATE_LIMIT_ENABLED=false`` disables limiting.

A clock that steps back (NTP, a test's time travel) moves the schedule back with it, so that the
spacing holds and nobody waits for the clock to catch up with slots taken before the step.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis

from .errors import LocalRateLimitExceeded, RateLimiterUnavailable

logger = logging.getLogger(__name__)

# The variable delay on the way to the upstream that the spacing absorbs (see the module doc).
NETWORK_MARGIN = 0.105
# A caller waking up later than this for its slot postpones the slots not yet taken.
LATE_TOLERANCE = 0.005
REDIS_PREFIX = "anyfast:ratelimit:"


@dataclass(frozen=True)
class Budget:
    """``count`` calls per ``seconds``, as the upstream documents it."""

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
    def per_second(self) -> float:
        """The documented rate, in calls per second (no margin)."""
        return self.count / self.seconds

    @property
    def interval(self) -> float:
        """Seconds between two grants: the period and the network margin, shared out evenly."""
        return (self.seconds + NETWORK_MARGIN) / self.count

    def __str__(self) -> str:
        return f"{self.count}/{self.seconds:g}"


# Reference §8 (BytePlus, per account). Actions missing here are not limited.
DOCUMENTED_BUDGETS: dict[str, Budget] = {
    "CreateVisualValidateSession": Budget(3, 1),
    "GetVisualValidateResult": Budget(3, 1),
    "CreateAsset": Budget(300, 60),
    "GetAsset": Budget(100, 1),
    "ListAssets": Budget(10, 1),
    "UpdateAsset": Budget(10, 1),
    "DeleteAsset": Budget(10, 1),
    "DeleteAssetGroup": Budget(5, 1),
    "ListAssetGroups": Budget(10, 1),
}


def budgets_with(overrides: Mapping[str, str]) -> dict[str, Budget]:
    """The documented budgets with ``overrides`` (``{"GetAsset": "40/1"}``) applied.

    ``ValueError`` for an action the table does not know (a misspelt name would otherwise be
    ignored silently) or a budget that is not ``<count>/<seconds>``.
    """
    unknown = sorted(set(overrides) - set(DOCUMENTED_BUDGETS))
    if unknown:
        raise ValueError(
            f"unknown action(s) {', '.join(unknown)}; "
            f"the budgeted actions are {', '.join(DOCUMENTED_BUDGETS)}"
        )
    return {
        **DOCUMENTED_BUDGETS,
        **{action: Budget.parse(text) for action, text in overrides.items()},
    }


@dataclass(frozen=True)
class Schedule:
    """One action's state: its next free slot, and the clock reading when it was last moved."""

    next_free: float
    written: float


def take_slot(
    schedule: Schedule | None, now: float, interval: float, max_wait: float
) -> tuple[float | None, Schedule | None]:
    """The one algorithm: ``(seconds until the slot taken, the new schedule)``.

    ``(None, None)`` (and nothing changes) when the next free slot is more than ``max_wait``
    away. A clock that reads earlier than the last write went back: the schedule moves back by
    as much.
    """
    next_free = now
    if schedule is not None:
        next_free = schedule.next_free - max(0.0, schedule.written - now)
    slot = max(next_free, now)
    wait = slot - now
    if wait > max_wait:
        return None, None
    return wait, Schedule(slot + interval, now)


class Backend(Protocol):
    def take_slot(self, action: str, interval: float, max_wait: float) -> float | None:
        """Atomically take the next free slot of ``action`` if it is at most ``max_wait`` seconds
        away, and return the seconds until it (0.0: now); else take nothing and return None."""
        ...

    def postpone(self, action: str, seconds: float) -> None:
        """Atomically move the next free slot of ``action`` (if any) ``seconds`` later."""
        ...

    def describe(self) -> str: ...


class MemoryBackend:
    """One process only (tests, single-process tools). ``clock`` is injectable."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._schedules: dict[str, Schedule] = {}

    def take_slot(self, action: str, interval: float, max_wait: float) -> float | None:
        with self._lock:
            wait, schedule = take_slot(
                self._schedules.get(action), self.clock(), interval, max_wait
            )
            if schedule is not None:
                self._schedules[action] = schedule
            return wait

    def postpone(self, action: str, seconds: float) -> None:
        with self._lock:
            schedule = self._schedules.get(action)
            if schedule is not None:
                self._schedules[action] = Schedule(schedule.next_free + seconds, schedule.written)

    def describe(self) -> str:
        return "memory (this process only)"


class SQLiteBackend:
    """A SQLite file shared by every process of one host.

    ``BEGIN IMMEDIATE`` takes the database's write lock before reading, so the read-decide-write
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
            # WAL: readers never block the writer; losing the last slots on an OS crash is
            # harmless.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schedules "
                "(action TEXT PRIMARY KEY, next_free REAL NOT NULL, written REAL NOT NULL)"
            )
        conn.execute("PRAGMA synchronous=OFF")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def take_slot(self, action: str, interval: float, max_wait: float) -> float | None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(
                "SELECT next_free, written FROM schedules WHERE action = ?", (action,)
            ).fetchone()
            wait, schedule = take_slot(
                Schedule(*row) if row else None, self.clock(), interval, max_wait
            )
            if schedule is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO schedules VALUES (?, ?, ?)",
                    (action, schedule.next_free, schedule.written),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return wait

    def postpone(self, action: str, seconds: float) -> None:
        self._connection().execute(
            "UPDATE schedules SET next_free = next_free + ? WHERE action = ?", (seconds, action)
        )

    def describe(self) -> str:
        return f"SQLite file {self.path}"


# ``take_slot`` run atomically inside Redis: one hash per action with the next free slot and the
# time of the last write, in integer microseconds of the Redis server's clock (``TIME``), so that
# every host shares one clock; ARGV[3], when given, replaces it (tests inject a clock). Answers
# the wait in microseconds, or -1 when the slot is beyond ARGV[2].
_REDIS_SCRIPT = """
local key, interval, max_wait = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local now
if ARGV[3] ~= '' then
  now = tonumber(ARGV[3])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local state = redis.call('HMGET', key, 'next_free', 'written')
local next_free = now
if state[1] then
  next_free = tonumber(state[1]) - math.max(0, tonumber(state[2]) - now)
end
local slot = math.max(next_free, now)
local wait = slot - now
if wait > max_wait then
  return -1
end
-- Lua would write numbers as '%.14g' (0.1 ms steps at today's epoch): format them exactly.
local function us(x) return string.format('%.0f', x) end
redis.call('HSET', key, 'next_free', us(slot + interval), 'written', us(now))
-- An idle action's schedule is forgotten a minute after its last slot.
redis.call('PEXPIRE', key, math.ceil((wait + interval) / 1000) + 60000)
return wait
"""


# ``postpone``: the hash may have expired meanwhile; an increment would then leave half of one.
_REDIS_POSTPONE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'next_free', ARGV[1])
end
return 0
"""


class RedisBackend:
    """Redis shared by every host: one small hash per action."""

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
        self._postpone = client.register_script(_REDIS_POSTPONE)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisBackend:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, **kwargs)

    def take_slot(self, action: str, interval: float, max_wait: float) -> float | None:
        now = "" if self.clock is None else str(int(self.clock() * 1_000_000))
        wait_us = int(
            self._script(
                keys=[self.prefix + action],
                # Rounded up: whole microseconds must never make the spacing shorter.
                args=[math.ceil(interval * 1_000_000), int(max_wait * 1_000_000), now],
            )
        )
        return None if wait_us < 0 else wait_us / 1_000_000

    def postpone(self, action: str, seconds: float) -> None:
        self._postpone(keys=[self.prefix + action], args=[math.ceil(seconds * 1_000_000)])

    def describe(self) -> str:
        kwargs = self.client.connection_pool.connection_kwargs
        # Host, port and db only: a Redis URL may carry a password.
        return f"Redis {kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('db')}"


class RateLimiter:
    """Blocking per-action limiter over a shared ``Backend``.

    ``acquire(action)`` returns once a call may be made (the seconds it waited), or raises
    ``LocalRateLimitExceeded`` (a transient error, at once, without waiting) when the next free
    slot is more than ``max_wait`` away. Actions without a budget are never limited.
    """

    def __init__(
        self,
        budgets: Mapping[str, Budget],
        backend: Backend,
        *,
        max_wait: float,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.budgets = dict(budgets)
        self.backend = backend
        self.max_wait = max_wait
        self.sleep = sleep
        self.monotonic = monotonic

    def acquire(self, action: str, *, max_wait: float | None = None) -> float:
        budget = self.budgets.get(action)
        if budget is None:
            return 0.0
        limit = self.max_wait if max_wait is None else max_wait
        try:
            wait = self.backend.take_slot(action, budget.interval, limit)
            answered = self.monotonic()
            if wait is None:
                raise LocalRateLimitExceeded(
                    f"no {action} slot within {limit:g} s (budget {budget} s)",
                    action=action,
                    code="LocalRateLimit",
                )
            if wait > 0:
                self.sleep(wait)
            late = self.monotonic() - answered - wait
            if late > LATE_TOLERANCE:
                self.backend.postpone(action, late)
        except (sqlite3.Error, OSError, redis.RedisError) as exc:
            raise RateLimiterUnavailable(
                f"{self.backend.describe()}: {type(exc).__name__}: {exc}",
                action=action,
                code="RateLimiterUnavailable",
            ) from exc
        if wait > 1:
            logger.info("rate limiter: %s waited %.1f s for its slot", action, wait)
        return wait

    def describe(self) -> str:
        return self.backend.describe()


class NullRateLimiter:
    """Limiting disabled (``ANYFAST_RATE_LIMIT_ENABLED=false``)."""

    def acquire(self, action: str, *, max_wait: float | None = None) -> float:
        return 0.0

    def describe(self) -> str:
        return "disabled"


_backends: dict[tuple[str, str, str], Backend] = {}
_backends_lock = threading.Lock()


def budgets_from_settings() -> dict[str, Budget]:
    """The documented budgets with ``settings.ANYFAST_RATE_LIMITS`` applied."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        return budgets_with(settings.ANYFAST_RATE_LIMITS)
    except ValueError as exc:
        raise ImproperlyConfigured(f"ANYFAST_RATE_LIMITS: {exc}") from exc


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
        budgets_from_settings(), backend, max_wait=settings.ANYFAST_RATE_LIMIT_MAX_WAIT
    )
