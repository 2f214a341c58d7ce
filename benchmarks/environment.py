"""The throwaway environment the benchmarks run in: variables, database, gunicorn.

Must be prepared (``prepare``) before Django is set up, since the settings read the environment
once. The database is PostgreSQL, dropped and created again on every run; its name must end in
``_bench`` so that no other database can be dropped by mistake.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/portal_bench"
# A Redis database of its own: the limiter's keys there are deleted before each run.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
API_KEY = "sk-bench-0123456789abcdef"
# The documented GetAsset budget is 100/s, but this 2-core machine, running the server, the
# database and the client processes together, tops out at 80-105 GetAsset/s with no limit at all
# (the capacity row of the table): a 100/s budget would measure the machine, not the limiter.
# So the benchmark runs GetAsset at a budget the machine sustains; BENCH_GET_ASSET_BUDGET=100/1
# tries the real one on a bigger machine.
DEFAULT_GET_ASSET_BUDGET = "40/1"


def prepare(workdir: Path, *, database_url: str, port: int) -> dict[str, str]:
    """Set (in ``os.environ``) and return the variables every benchmark process shares."""
    var_dir = workdir / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    public_url = f"http://127.0.0.1:{port}"
    get_asset_budget = os.environ.get("BENCH_GET_ASSET_BUDGET", DEFAULT_GET_ASSET_BUDGET)
    values = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "true",
        "SANDBOX_ENABLED": "true",
        "PORTAL_VAR_DIR": str(var_dir),
        "PRIVATE_MEDIA_ROOT": str(workdir / "private"),
        "DATABASE_URL": database_url,
        # The pipeline benchmark's worker, beat and this process share Redis as the broker.
        "CELERY_BROKER_URL": os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        "PORTAL_PUBLIC_URL": public_url,
        "ANYFAST_BASE_URL": f"{public_url}/sandbox",
        "ANYFAST_API_KEY": API_KEY,
        "ANYFAST_RATE_LIMIT_ENABLED": "true",
        "ANYFAST_RATE_LIMIT_REDIS_URL": "",
        "ANYFAST_RATE_LIMIT_FILE": str(var_dir / "rate-limit.sqlite3"),
        "SANDBOX_ENFORCE_RATE_LIMITS": "true",
        "SANDBOX_PROCESSING_SECONDS": "0",
        "SANDBOX_VIDEO_PROCESSING_SECONDS": "0",
        "SANDBOX_LATENCY_MS": "0",
        "SANDBOX_LATENCY_JITTER_MS": "0",
        "SANDBOX_FAULT_RATE_500": "0",
        "SANDBOX_FAULT_RATE_502": "0",
        "SANDBOX_FAULT_RATE_429": "0",
        "SANDBOX_FAULT_RATE_TIMEOUT": "0",
        "SANDBOX_FAULT_RATE_DROP": "0",
        # The client's limiter and the sandbox enforce the same budgets here.
        "ANYFAST_RATE_LIMITS": f"GetAsset={get_asset_budget}",
        "SANDBOX_RATE_LIMITS": f"GetAsset={get_asset_budget}",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(values)
    return values


def recreate_database(database_url: str) -> None:
    """Drop and create the benchmark database (PostgreSQL, name ending in ``_bench``)."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql") or not name.endswith("_bench"):
        raise SystemExit(f"benchmarks: {database_url!r} is not a PostgreSQL database named *_bench")
    admin_url = urlunsplit(("postgresql", parts.netloc, "/postgres", "", ""))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
