"""``bin/bench scale``: every page and export at 100, 10,000 and 50,000 people (issue 16).

For each size, a PostgreSQL database of its own (``bench_scale_<size>``) is built with complete
data (``benchmarks.scale_data``, COPY: minutes at 50,000) and the pages are opened through
Django's test client as each role that may open them (superuser, onboarding, legal, producer):
a warm-up request, one counting queries, then the median of 5 more. Each size runs in a process
of its own (the settings read the database once). The table gives queries and milliseconds per
size, the ratio to the smallest size, and flags a row that breaks the target: within 2x of the
smallest size, under 300 ms at the largest (from 10,000 people), the same number of queries.

Options: ``--sizes 100,10000`` (default 100,10000,50000); ``--reuse`` measures a database kept
by an earlier ``--keep`` run instead of building it again; ``--keep`` keeps the databases
(otherwise dropped at the end); ``--roles legal,producer`` measures as these roles only;
``--save DIR`` writes each size's measures there, and ``--table DIR`` prints the table of those
saved there, measuring nothing. ``BENCH_SCALE_SERVER`` is the PostgreSQL server
(``postgres://postgres@127.0.0.1:5432``). Exits 1 when a row is flagged.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

from benchmarks import environment

DEFAULT_SIZES = (100, 10_000, 50_000)
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
PREFIX = "bench_scale_"
REPEATS = 5
TARGET_RATIO = 2.0
TARGET_MS = 300.0
FLAT_MEMORY = 1.5
INCREMENTAL_EVENTS = 3_300  # the audit events of 100 people: a busy day's, say
ROLES = ("superuser", "onboarding", "legal", "producer")


# --- The parent: one process per size, then the table -----------------------------------------


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bin/bench scale", description=__doc__)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--reuse", action="store_true", help="measure kept databases as they are")
    parser.add_argument("--keep", action="store_true", help="keep the databases at the end")
    parser.add_argument("--roles", default=",".join(ROLES), help="measure as these roles only")
    parser.add_argument(
        "--save", type=Path, help="also write each size's measures to this folder (JSON)"
    )
    parser.add_argument(
        "--table", type=Path, help="measure nothing: print the table of the measures saved here"
    )
    args = parser.parse_args(argv)
    if unknown := set(args.roles.split(",")) - set(ROLES):
        parser.error(f"unknown roles {', '.join(sorted(unknown))}; choose from {', '.join(ROLES)}")
    sizes = sorted({int(size.replace("_", "")) for size in args.sizes.split(",")})
    server = os.environ.get("BENCH_SCALE_SERVER", DEFAULT_SERVER).rstrip("/")

    measured: dict[int, dict[str, Any]] = {}
    if args.table:
        for path in sorted(args.table.glob("scale-*.json")):
            result = json.loads(path.read_text())
            measured[result["size"]] = result
        sizes = []
    try:
        for size in sizes:
            url = f"{server}/{PREFIX}{size}"
            with tempfile.NamedTemporaryFile(suffix=".json") as out:
                command = [sys.executable, "-m", "benchmarks.scale", "--one", str(size), url]
                command += [out.name, "--roles", args.roles, *(["--reuse"] if args.reuse else [])]
                print(f"==> {size} people ({url})", flush=True)
                subprocess.run(command, check=True)  # noqa: S603 (this interpreter)
                measured[size] = json.loads(Path(out.name).read_text())
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"scale-{size}.json").write_text(json.dumps(measured[size]))
    finally:
        if not args.keep:
            for size in sizes:
                _drop(f"{server}/{PREFIX}{size}")
    lines, flagged = table(measured)
    print("\n" + "\n".join(lines))
    print(f"\n{flagged} rows flagged" if flagged else "\nno row flagged")
    return 1 if flagged else 0


def table(measured: dict[int, dict[str, Any]]) -> tuple[list[str], int]:
    """The table's lines (one row per page and role, columns per size) and the flagged rows."""
    sizes = sorted(measured)
    base = sizes[0]
    keys: list[tuple[str, str]] = []
    values: dict[tuple[str, str, int], dict[str, Any]] = {}
    for size in sizes:
        for row in measured[size]["rows"]:
            key = (row["page"], row["role"])
            if key not in keys:
                keys.append(key)
            values[(*key, size)] = row
    header = ["page", "role"]
    for size in sizes:
        header += [f"q@{size:,}", f"ms@{size:,} (rows)"]
    header += [f"x {size:,}/{base:,}" for size in sizes[1:]] + ["flag"]
    rows = [header]
    flagged = 0
    for page, role in keys:
        cells = [page, role]
        found = [values.get((page, role, size)) for size in sizes]
        for row in found:
            if row is None:
                cells += ["-", "-"]
                continue
            rows_listed = f" ({row['rows']})" if row.get("rows") is not None else ""
            cells += [str(row["queries"] or "-"), _number(row["ms"]) + rows_listed]
        ratios = [
            row["ms"] / (found[0]["ms"] or 1e-9) if row and found[0] else None for row in found[1:]
        ]
        cells += [f"{ratio:.1f}" if ratio is not None else "-" for ratio in ratios]
        flags = _flags(found, ratios, sizes)
        flagged += bool(flags)
        rows.append([*cells, ", ".join(flags)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    for size in sizes:
        built = measured[size].get("built_seconds")
        lines.append(f"{size:,} people: " + (f"built in {built:.0f} s" if built else "reused"))
    return lines, flagged


def _flags(
    found: list[dict[str, Any] | None], ratios: list[float | None], sizes: list[int]
) -> list[str]:
    """What a row breaks, by its kind: a page (the default) must stay within 2x of the smallest
    size, under 300 ms from 10,000 people, at the same queries; an export's first bytes within
    300 ms at every size; its memory flat from 10,000 people on (1.5x); the full audit check
    within 2x of reading its rows. A "total" (an export read to its end, linear by nature) is
    shown, not judged."""
    kind = next((row.get("kind", "page") for row in found if row), "page")
    last = found[-1]
    flags = []
    if kind == "page":
        for size, ratio, row in zip(sizes[1:], ratios, found[1:], strict=True):
            if ratio is not None and ratio > TARGET_RATIO:
                more_rows = (
                    found[0] and row and (found[0].get("rows") or 0) < (row.get("rows") or 0)
                )
                rows = f" (rows {found[0]['rows']} to {row['rows']})" if more_rows else ""  # type: ignore[index]
                flags.append(f">{TARGET_RATIO:.0f}x at {size:,}{rows}")
        if last and sizes[-1] >= 10_000 and last["ms"] >= TARGET_MS:
            flags.append(f">={TARGET_MS:.0f} ms")
        if len({row["queries"] for row in found if row and row["queries"] is not None}) > 1:
            flags.append("queries grow")
    elif kind == "first bytes":
        if any(row and row["ms"] >= TARGET_MS for row in found):
            flags.append(f">={TARGET_MS:.0f} ms")
    elif kind == "memory":
        large = [
            row["ms"] for size, row in zip(sizes, found, strict=True) if row and size >= 10_000
        ]
        if len(large) > 1 and large[-1] > FLAT_MEMORY * large[0]:
            flags.append(f"grows >{FLAT_MEMORY}x from 10,000")
    elif kind == "to read" and any(row and row["ms"] > TARGET_RATIO for row in found):
        flags.append(f">{TARGET_RATIO:.0f}x the read")
    return flags


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if parts.scheme not in ("postgres", "postgresql") or not name.startswith(PREFIX):
        raise SystemExit(f"bench scale: {database_url!r} is not a PostgreSQL {PREFIX}* database")
    return urlunsplit(("postgresql", parts.netloc, "/postgres", "", "")), name


def _drop(database_url: str) -> None:
    admin_url, name = _admin_url(database_url)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _built_size(database_url: str) -> int | None:
    """The size a kept database was completely built with, or None."""
    admin_url, name = _admin_url(database_url)
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return None
    url = urlunsplit(("postgresql", *urlsplit(database_url)[1:]))
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT to_regclass('bench_scale_built')").fetchone()[0]:  # type: ignore[index]
            return None
        row = conn.execute("SELECT size FROM bench_scale_built").fetchone()
        return row[0] if row else None


# --- One size, in its own process ------------------------------------------------------------


def one(size: int, database_url: str, out: Path, *, reuse: bool, roles: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="portal-bench-scale-") as tmp:
        from sandbox.servers import free_port

        environment.prepare(Path(tmp), database_url=database_url, port=free_port())
        built = reuse and _built_size(database_url) == size
        if not built:
            admin_url, name = _admin_url(database_url)
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')

        import django

        django.setup()
        # Not a traceback for every page a role may not open.
        logging.getLogger("django.request").setLevel(logging.ERROR)
        from django.core.management import call_command
        from django.db import connection

        result: dict[str, Any] = {"size": size, "built_seconds": None}
        if not built:
            from benchmarks import scale_data

            call_command("migrate", verbosity=0)
            started = time.perf_counter()
            scale_data.build(size)
            result["built_seconds"] = time.perf_counter() - started
            with connection.cursor() as cursor:
                cursor.execute("CREATE TABLE bench_scale_built (size integer)")
                cursor.execute("INSERT INTO bench_scale_built VALUES (%s)", [size])
            print(f"  built in {result['built_seconds']:.0f} s", flush=True)
        result["rows"] = measure_all(size, roles)
        out.write_text(json.dumps(result))
        connection.close()


def pages(size: int) -> list[tuple[str, str]]:
    """The pages measured: (name, URL). The person opened is one with a withdrawal (from 10,000
    people) and an open invitation; the deep page of ``/references/`` starts half-way down."""
    from django.urls import reverse

    from assets.models import Asset
    from assets.references import Position

    person = max(100, size // 2 // 100 * 100) if size >= 100 else 25
    middle = Asset.objects.order_by("-created_at", "-pk")[size * 3 // 2]
    admin = "admin:{}_changelist".format
    return [
        ("ReferenceCopy changelist", reverse(admin("assets_referencecopy"))),
        ("/references/ page 1", reverse("references:list")),
        (
            "/references/ half-way down",
            reverse("references:list") + f"?older={Position.of(middle)}",
        ),
        ("/references/ project filter", reverse("references:list") + "?project=Project+07"),
        ("/references/ person by name", reverse("references:list") + f"?name=P{person:06d}"),
        ("consent CSV export (all)", reverse("admin:consent_consentrecord_export_csv")),
        ("AuditEvent changelist", reverse(admin("audit_auditevent"))),
        ("/admin/ home", reverse("admin:index")),
        ("People changelist", reverse(admin("consent_person"))),
        ("People 'waiting'", reverse(admin("consent_person")) + "?verification=waiting"),
        ("People search", reverse(admin("consent_person")) + f"?q=Person+{person:06d}"),
        ("Asset changelist", reverse(admin("assets_asset"))),
        ("AssetGroup changelist", reverse(admin("assets_assetgroup"))),
        ("ConsentRecord changelist", reverse(admin("consent_consentrecord"))),
        ("ConsentSignature changelist", reverse(admin("consent_consentsignature"))),
        ("PersonalLink changelist", reverse(admin("consent_personallink"))),
        ("Withdrawal changelist", reverse(admin("assets_withdrawal"))),
        ("ProducerNotice changelist", reverse(admin("assets_producernotice"))),
        ("invitation changelist", reverse(admin("verification_verificationsession"))),
        ("upstream session changelist", reverse(admin("verification_upstreamsession"))),
        ("OutboundEmail changelist", reverse(admin("mail_outboundemail"))),
        ("person page (timelines)", reverse("admin:consent_person_change", args=[person])),
        ("consent page (timeline)", reverse("admin:consent_consentrecord_change", args=[person])),
        (
            "invitation page (timeline)",
            reverse("admin:verification_verificationsession_change", args=[person]),
        ),
    ]


def measure_all(size: int, roles: list[str]) -> list[dict[str, Any]]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    clients = {}
    for role in roles:
        client = Client(SERVER_NAME="127.0.0.1")
        client.force_login(get_user_model().objects.get(username=f"bench-{role}"))
        clients[role] = client
    rows = []
    listed = pages(size)
    for page, url in listed:
        for role, client in clients.items():
            measured = measure(client, url)
            if measured is not None:
                rows.append({"page": page, "role": role, **measured})
                print(f"  {page} as {role}: {measured['ms']:.0f} ms", flush=True)
    name = "consent CSV export (all)"
    exporters = [row["role"] for row in rows if row["page"] == name]
    if exporters:  # as legal, when legal is measured and may export
        role = "legal" if "legal" in exporters else exporters[0]
        for row in rows:
            if row["page"] == name:
                row["kind"] = "total"  # streamed: linear in the records by nature
        rows.append(first_bytes(clients[role], dict(listed)[name], role))
        rows.append(export_memory(clients[role], dict(listed)[name], role))
    rows += verify_audit_rows()
    return rows


def measure(client: Any, url: str) -> dict[str, Any] | None:
    """Queries of one warm request and the median of ``REPEATS`` after it; None when refused.

    A first request warms the caches (content types, permissions), so that the queries counted
    do not depend on which role opened the page first.
    """
    from django.db import connection

    response = client.get(url)
    if response.status_code != 200:
        return None
    rows = _rows_listed(response)
    executed: list[str] = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        executed.append(sql)
        return execute(sql, params, many, context)

    # A wrapper, not CaptureQueriesContext: each request clears DEBUG's query log as it starts.
    with connection.execute_wrapper(count):
        _get(client, url)
    durations = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        _get(client, url)
        durations.append((time.perf_counter() - started) * 1000)
    return {
        "queries": len(executed),
        "ms": statistics.median(durations),
        "max_ms": max(durations),
        "rows": rows,
    }


def _rows_listed(response: Any) -> int | None:
    """How many rows a list page shows (a changelist's or /references/'s table), else None:
    a list's cost grows with its rows (1 to 100 on a page) as well as with the tables."""
    if getattr(response, "streaming", False):
        return None
    html = response.content.decode()
    marker = next((m for m in ('id="result_list"', 'class="ref-table') if m in html), None)
    if marker is None:
        return None
    body = html.split(marker, 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return body.count("<tr") - body.count("colspan=")  # not the "nothing found" row


def _get(client: Any, url: str) -> tuple[int, int]:
    """GET ``url`` and read all of it (a streamed body too): the status and the body's size."""
    response = client.get(url)
    if getattr(response, "streaming", False):
        return response.status_code, sum(len(chunk) for chunk in response.streaming_content)
    return response.status_code, len(response.content)


def first_bytes(client: Any, url: str, role: str) -> dict[str, Any]:
    """The export's time to its first bytes (median of ``REPEATS``)."""
    durations = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        response = client.get(url)
        content: Any = getattr(response, "streaming_content", None) or [response.content]
        next(iter(content))
        durations.append((time.perf_counter() - started) * 1000)
        response.close()
    ms = statistics.median(durations)
    page = "consent CSV export: first bytes"
    return {"page": page, "role": role, "queries": None, "ms": ms, "kind": "first bytes"}


def export_memory(client: Any, url: str, role: str) -> dict[str, Any]:
    """The Python memory the export peaks at while read to its end (tracemalloc), in MB: the
    row's "ms" column holds it, so that its ratio shows whether it grows with the size."""
    tracemalloc.start()
    try:
        _get(client, url)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    page = "consent CSV export: peak MB (in ms column)"
    return {"page": page, "role": role, "queries": None, "ms": peak / 2**20, "kind": "memory"}


def verify_audit_rows() -> list[dict[str, Any]]:
    """``verify_audit``: as it runs by default, from the last verified anchor with
    ``INCREMENTAL_EVENTS`` after it, and ``--full``, timed against reading the same rows as
    ``bin/bench audit`` does: through the ORM (judged: at most 2x, the audit benchmark's target)
    and with the check's own query alone (the raw floor, shown)."""
    from audit.anchors import Anchor
    from audit.models import AuditEvent
    from audit.verification import verify_chain
    from benchmarks.audit_chain import read_as_the_check_does, read_with_the_orm

    started = time.perf_counter()
    report = verify_chain(full=True)
    full_ms = (time.perf_counter() - started) * 1000
    if not report.intact:
        raise SystemExit(f"bench scale: the audit chain does not verify: {report.problems[:3]}")
    read_ms, raw_ms = (_timed_ms(read) for read in (read_with_the_orm, read_as_the_check_does))

    events = AuditEvent.objects.order_by("-pk")
    last_id, digest, key_id = events.values_list("pk", "hash", "key_id")[INCREMENTAL_EVENTS]
    count = AuditEvent.objects.filter(pk__lte=last_id).count()
    anchor = Anchor(last_id, digest, key_id, count, at="bench", verified=True)
    durations = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        incremental = verify_chain(anchors=[anchor], full=False)
        durations.append((time.perf_counter() - started) * 1000)
    if not incremental.intact or incremental.events != INCREMENTAL_EVENTS:
        raise SystemExit(f"bench scale: the incremental check went wrong: {incremental}")
    name = f"verify_audit ({INCREMENTAL_EVENTS:,} events after the last anchor)"
    return [
        # Shown, not judged as a page: besides walking the events after the anchor, it counts
        # the events before it (one index-only COUNT, linear) to prove none was removed.
        {"page": name, "role": "-", "queries": None, "ms": statistics.median(durations),
         "kind": "total"},
        {"page": f"verify_audit --full, total ({report.events:,} events)", "role": "-",
         "queries": None, "ms": full_ms, "kind": "total"},
        {"page": "verify_audit --full / reading its rows (ratio in ms column)", "role": "-",
         "queries": None, "ms": full_ms / read_ms, "kind": "to read"},
        {"page": "verify_audit --full / the raw read (ratio in ms column)", "role": "-",
         "queries": None, "ms": full_ms / raw_ms, "kind": "total"},
    ]  # fmt: skip


def _timed_ms(work: Any) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def _child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale")
    parser.add_argument("--one", nargs=3, metavar=("SIZE", "DATABASE_URL", "OUT"), required=True)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--roles", default=",".join(ROLES))
    args = parser.parse_args(argv)
    size, url, out = args.one
    one(int(size), url, Path(out), reuse=args.reuse, roles=args.roles.split(","))


if __name__ == "__main__":
    _child(sys.argv[1:])
