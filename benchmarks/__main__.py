"""``python -m benchmarks [name ...]``: run the benchmarks (all, or those named), print the table.

Names: ``ratelimit``, ``media``, ``validation``, ``admin``, ``pipeline``, ``audit``,
``faults``. Exits 1 when a target is missed, 2 when a benchmark could not run. ``scale``
(``benchmarks.scale``, its own options) runs alone and is not among "all": it builds databases
of up to 50,000 people. ``BENCH_DATABASE_URL`` (default
``postgres://postgres@127.0.0.1:5432/portal_bench``, dropped and created again) and
``BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/14``) say where the services are.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import environment
from benchmarks.results import Result, table
from sandbox.servers import free_port

NAMES = ("ratelimit", "media", "validation", "admin", "pipeline", "audit", "faults")


def main() -> int:
    if sys.argv[1:2] == ["scale"]:
        from benchmarks import scale

        return scale.main(sys.argv[2:])
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="name", help=f"any of {', '.join(NAMES)}")
    names = parser.parse_args().names or list(NAMES)
    if unknown := sorted(set(names) - set(NAMES)):
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")

    database_url = os.environ.get("BENCH_DATABASE_URL", environment.DEFAULT_DATABASE_URL)
    port = free_port()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp:
        workdir = Path(tmp)
        base_env = environment.prepare(workdir, database_url=database_url, port=port)
        environment.recreate_database(database_url)

        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        print(
            f"benchmarks: {datetime.date.today()}, {os.cpu_count()} CPUs, Python "
            f"{platform.python_version()}, database {database_url}, work dir {workdir}"
        )

        results: list[Result] = []
        failed: list[str] = []
        for name in names:
            print(f"==> {name}")
            started = time.monotonic()
            try:
                results += run_one(name, workdir, base_env, port)
            except Exception:
                traceback.print_exc()
                failed.append(name)
            print(f"  {name}: {time.monotonic() - started:.0f} s")

        from django.db import connections

        connections.close_all()

    print()
    print(table(results))
    missed = [r for r in results if r.met is False]
    print(
        f"\n{len(results) - len(missed)} of {len(results)} targets met in "
        f"{time.monotonic() - began:.0f} s"
        + (f"; {len(missed)} MISSED" if missed else "")
        + (f"; could not run: {', '.join(failed)}" if failed else "")
    )
    if failed:
        return 2
    return 1 if missed else 0


def run_one(name: str, workdir: Path, base_env: dict[str, str], port: int) -> list[Result]:
    if name == "ratelimit":
        from benchmarks import upstream_ratelimit

        return upstream_ratelimit.run(workdir, base_env=base_env, port=port)
    if name == "media":
        from benchmarks import media_validation

        return media_validation.run(workdir)
    if name == "validation":
        from benchmarks import adversarial_validation

        return adversarial_validation.run(workdir)
    if name == "pipeline":
        from benchmarks import asset_pipeline

        return asset_pipeline.run(workdir, base_env=base_env, port=port)
    if name == "audit":
        from benchmarks import audit_chain

        return audit_chain.run()
    if name == "faults":
        from benchmarks import worker_faults

        return worker_faults.run(workdir, base_env=base_env, port=port)
    from benchmarks import admin_changelists

    return admin_changelists.run()


if __name__ == "__main__":
    sys.exit(main())
