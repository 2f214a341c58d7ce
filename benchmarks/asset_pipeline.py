"""Benchmark: 300 images through the whole pipeline, against the sandbox enforcing the limits.

gunicorn serves the portal (its signed file links) and the sandbox, which answers 429 above the
documented budgets (CreateAsset 300/min). A Celery worker (prefork) and beat run as in the
Procfile, on Redis, with the limiter's counts in Redis too. This process uploads ``IMAGES``
distinct portraits of one verified person through ``assets.services.asset_create`` (validated,
stored, queued on commit), then waits until every one is Active.

The bound: the documented CreateAsset budget admits ``IMAGES`` creates, spread evenly, in
``IMAGES * seconds / count`` (60 s for 300 at 300/min); the sandbox processes in no time and the
rest of the work (GetAsset at 40/s, local checks) fits beside it. The target is a wall time of at
most ``TARGET_RATIO`` times that bound, with no 429 answered and exactly one upstream asset per
image. ``BENCH_CREATE_ASSET_BUDGET`` (e.g. ``300/30``) sets another budget for both sides, for a
quicker run; the ratio is then to that budget's bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.environment import DEFAULT_REDIS_URL, ROOT
from benchmarks.results import Result

if TYPE_CHECKING:
    from consent.models import Person

NAME = "asset pipeline"
IMAGES = 300
TARGET_RATIO = 1.15
WORKER_CONCURRENCY = 4


@contextmanager
def celery(env: Mapping[str, str], logs: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``celery -A portal <args>`` in the background, its output in ``logs``."""
    with logs.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "celery", "-A", "portal", *args, "--loglevel", "WARNING"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_worker(worker: subprocess.Popen[bytes], logs: Path) -> None:
    from portal.celery import app

    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Celery worker did not start:\n{logs.read_text()[-3000:]}")


def verified_person(identity: str = "ada") -> Person:
    """A person verified through the real client (the phone step played by the sandbox) with an
    approved consent in force: a group that takes uploads."""
    from django.utils import timezone

    from assets.models import AssetGroup
    from consent.models import ConsentRecord, Person
    from sandbox.testing import complete_session
    from upstream import AnyfastClient
    from verification.models import UpstreamSession, VerificationSession

    with AnyfastClient() as client:
        started = client.create_visual_validate_session("http://127.0.0.1/callback")
        complete_session(started.byted_token, identity=identity)
        group_id = client.get_visual_validate_result(started.byted_token).group_id
    person = Person.objects.create(legal_name="Ada Bench", display_name="Ada")
    consent = ConsentRecord.objects.create(
        person=person,
        consent_text_version="bench",
        intended_uses="Benchmark uploads.",
        starts_on=timezone.localdate(),
        capture_method=ConsentRecord.CaptureMethod.E_SIGNATURE,
    )
    # Created a draft and moved one transition at a time, as the database demands.
    records = ConsentRecord.objects.filter(pk=consent.pk)
    records.update(status=ConsentRecord.Status.PENDING_REVIEW)
    records.update(status=ConsentRecord.Status.APPROVED, reviewed_at=timezone.now())
    invitation = VerificationSession.objects.create(
        person=person,
        consent=consent,
        status=VerificationSession.Status.VERIFIED,
        verified_at=timezone.now(),
        ended_at=timezone.now(),
    )
    session = UpstreamSession.objects.create(
        invitation=invitation,
        byted_token=f"bench-{group_id}",
        purpose=UpstreamSession.Purpose.DESK,
        status=UpstreamSession.Status.CONFIRMED,
        confirmed_at=timezone.now(),
        group_id=group_id,
    )
    AssetGroup.objects.create(
        group_id=group_id,
        person=person,
        upstream_session=session,
        api_key_fingerprint=client.key_fingerprint,
    )
    return person


def run(workdir: Path, *, base_env: dict[str, str], port: int) -> list[Result]:
    import redis
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile

    from assets.models import Asset
    from assets.services import pipeline
    from portal.celery import app
    from sandbox import counters
    from sandbox.models import SandboxAsset
    from sandbox.samples import make_image
    from sandbox.servers import gunicorn
    from upstream.ratelimit import DOCUMENTED_BUDGETS, REDIS_PREFIX, Budget

    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    budget_text = os.environ.get(
        "BENCH_CREATE_ASSET_BUDGET", str(DOCUMENTED_BUDGETS["CreateAsset"])
    )
    budget = Budget.parse(budget_text)
    bound = IMAGES * budget.seconds / budget.count
    # The same CreateAsset budget for the limiter and the sandbox; the limiter's counts in Redis.
    env = {
        **base_env,
        "ANYFAST_RATE_LIMITS": f"{base_env['ANYFAST_RATE_LIMITS']},CreateAsset={budget_text}",
        "SANDBOX_RATE_LIMITS": f"{base_env['SANDBOX_RATE_LIMITS']},CreateAsset={budget_text}",
        "ANYFAST_RATE_LIMIT_REDIS_URL": redis_url,
    }
    print(
        f"  asset pipeline: {IMAGES} images, CreateAsset {budget_text} (bound {bound:.0f} s), "
        f"worker concurrency {WORKER_CONCURRENCY}, sweep every "
        f"{settings.ASSET_SWEEP_INTERVAL_SECONDS:g} s"
    )
    contents = [
        make_image(width=600, height=800, fmt="JPEG", face="ada", label=f"take {n}")
        for n in range(IMAGES)
    ]
    limits = redis.Redis.from_url(redis_url, socket_timeout=5)
    for key in limits.scan_iter(f"{REDIS_PREFIX}*"):
        limits.delete(key)

    worker_log, beat_log = workdir / "pipeline-worker.log", workdir / "pipeline-beat.log"
    with (
        gunicorn(env, port=port, workers=2, threads=8),
        celery(
            env,
            worker_log,
            "worker",
            "--concurrency",
            str(WORKER_CONCURRENCY),
            "--without-gossip",
            "--without-mingle",
        ) as worker,
        celery(env, beat_log, "beat"),
    ):
        app.control.purge()  # messages left by an earlier run
        wait_for_worker(worker, worker_log)
        person = verified_person()
        time.sleep(1.5)  # the sandbox's buckets refill after the setup's calls
        counters.reset()

        started = time.monotonic()
        for number, content in enumerate(contents):
            upload = SimpleUploadedFile(f"take-{number:03d}.jpg", content)
            pipeline.asset_create(person=person, uploaded_file=upload, uploaded_by=None)
        queued = time.monotonic() - started
        deadline = started + 3 * bound + 60
        while Asset.objects.filter(status=Asset.Status.ACTIVE).count() < IMAGES:
            stuck = Asset.objects.filter(status=Asset.Status.FAILED).first()
            if stuck is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"not every image went Active: {stuck and stuck.error_message}\n"
                    + worker_log.read_text()[-3000:]
                )
            time.sleep(0.1)
        wall = time.monotonic() - started
        seen = counters.snapshot()

    ratio = wall / bound
    refused = sum(action["rate_limited"] for action in seen.values())
    faults = sum(action["faults"] for action in seen.values())
    creates = seen.get("CreateAsset", {}).get("calls", 0)
    upstream = SandboxAsset.objects.count()  # the setup made none
    retried = Asset.objects.filter(attempts__gt=1).count()
    return [
        Result(
            NAME,
            f"{IMAGES} images uploaded → all Active: wall time / bound ({bound:.0f} s at "
            f"CreateAsset {budget_text})",
            f"{wall:.1f} s = {ratio:.2f}x",
            f"<= {TARGET_RATIO:.2f}x",
            ratio <= TARGET_RATIO,
        ),
        Result(
            NAME,
            "429s answered by the sandbox (all actions); injected faults",
            f"{refused}; {faults}",
            "0",
            refused == 0,
        ),
        Result(
            NAME,
            "CreateAsset calls / assets upstream / uploads retried",
            f"{creates} / {upstream} / {retried}",
            f"{IMAGES} / {IMAGES} / 0",
            creates == upstream == IMAGES and retried == 0,
        ),
        Result(
            NAME,
            f"time to validate, store and queue the {IMAGES} images (this process)",
            f"{queued:.1f} s",
        ),
        Result(
            NAME,
            "GetAsset / ListAssets calls while following them",
            f"{seen.get('GetAsset', {}).get('calls', 0)} / "
            f"{seen.get('ListAssets', {}).get('calls', 0)}",
        ),
    ]
