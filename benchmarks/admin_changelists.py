"""Benchmark 3: the admin changelists of people, consent records and assets at scale.

With a few rows of each, then with ``ROWS`` people, consent records and assets (one verified
group per person; bulk_create, asset files a few placeholder bytes in the run's private
storage), a logged-in superuser opens each changelist through Django's test client. Targets: the
median response time at scale, and the same number of queries at both sizes (constant queries
per page: no query per row).
"""

from __future__ import annotations

import datetime
import hashlib
import statistics
import time

from benchmarks.results import Result

NAME = "admin changelists"
ROWS = 2000
SMALL = 10
REPEATS = 15
TARGET_MS = 300
PAGES = {
    "Person": "admin:consent_person_changelist",
    "ConsentRecord": "admin:consent_consentrecord_changelist",
    "Asset": "admin:assets_asset_changelist",
}


def populate(start: int, stop: int) -> None:
    """People ``start..stop-1``, each with a consent record, a group and an asset."""
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from django.utils import timezone

    from assets.models import Asset, AssetGroup
    from consent.models import ConsentRecord, Person

    today = timezone.localdate()
    numbers = range(start, stop)
    people = Person.objects.bulk_create(
        Person(legal_name=f"Person {n:05d}", display_name=f"P{n}", email=f"p{n}@studio.test")
        for n in numbers
    )
    statuses = [s for s in ConsentRecord.Status.values if s not in ("revoked",)]
    ConsentRecord.objects.bulk_create(
        ConsentRecord(
            person=person,
            consent_text_version="2026.1",
            intended_uses="Reference likeness for promotional video.",
            territory="Worldwide",
            starts_on=today,
            expires_on=today + datetime.timedelta(days=365),
            capture_method=ConsentRecord.CaptureMethod.E_SIGNATURE,
            status=statuses[n % len(statuses)],
            reviewed_at=timezone.now(),
        )
        for n, person in zip(numbers, people, strict=True)
    )
    groups = AssetGroup.objects.bulk_create(
        AssetGroup(group_id=f"group-bench-{n:05d}", person=person)
        for n, person in zip(numbers, people, strict=True)
    )
    assets = []
    for n, group in zip(numbers, groups, strict=True):
        content = f"placeholder {n}".encode()
        name = default_storage.save(f"assets/image/bench/{n}.jpg", ContentFile(content))
        active = n % 2 == 0
        assets.append(
            Asset(
                group=group,
                kind=Asset.Kind.IMAGE,
                file=name,
                original_filename=f"{n}.jpg",
                sha256=hashlib.sha256(content).hexdigest(),
                size_bytes=len(content),
                content_type="image/jpeg",
                width=1200,
                height=1600,
                status=Asset.Status.ACTIVE if active else Asset.Status.QUEUED,
                upstream_id=f"asset-bench-{n:05d}" if active else None,
            )
        )
    Asset.objects.bulk_create(assets)


def measure(client, url: str, repeats: int) -> tuple[list[float], int]:
    """Response times (ms) of ``repeats`` GETs after one warm-up, and the queries of one."""
    from django.db import connection

    executed: list[str] = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        executed.append(sql)
        return execute(sql, params, many, context)

    # A wrapper, not CaptureQueriesContext: each request clears DEBUG's query log as it starts.
    with connection.execute_wrapper(count):
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        response = client.get(url)
        durations.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return durations, len(executed)


def run() -> list[Result]:
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import reverse

    user = get_user_model().objects.create_superuser("bench-admin", "bench@studio.test", None)
    client = Client(SERVER_NAME="127.0.0.1")
    client.force_login(user)

    populate(0, SMALL)
    small_queries = {model: measure(client, reverse(url), 1)[1] for model, url in PAGES.items()}
    started = time.perf_counter()
    populate(SMALL, ROWS)
    print(f"  admin changelists: {ROWS} rows of each made in {time.perf_counter() - started:.1f} s")

    results = []
    for model, url_name in PAGES.items():
        durations, queries = measure(client, reverse(url_name), REPEATS)
        median = statistics.median(durations)
        results.append(
            Result(
                NAME,
                f"{model} changelist, {ROWS} rows: median of {REPEATS}",
                f"{median:.0f} ms (max {max(durations):.0f})",
                f"< {TARGET_MS} ms",
                median < TARGET_MS,
            )
        )
        results.append(
            Result(
                NAME,
                f"{model} changelist: queries with {SMALL} rows / {ROWS} rows",
                f"{small_queries[model]} / {queries}",
                "equal",
                small_queries[model] == queries,
            )
        )
    return results
