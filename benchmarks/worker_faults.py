"""Benchmark ``faults``: the workers' work survives killed workers, a broker outage and a faulty
upstream, and nothing is done twice.

gunicorn serves the portal and the sandbox, which answers ``BENCH_FAULT_RATE`` (20 %) of calls
with a fault (500, 502, a hung call, a dropped connection, in equal parts); a worker consuming
every queue and beat run on a Redis server of the benchmark's own (a free port, never the shared
Redis), started and stopped by it. This process queues ``BENCH_FAULT_FILES`` uploads for each of
``BENCH_FAULT_PEOPLE`` verified people, verifies as many other people (their phones complete and
come back to the callback page, between the outage and the last kill) and invites as many (an
email each); meanwhile it SIGKILLs the worker three times (each time a new one starts) and stops
the broker once, revoking half the uploaders' consents during the outage (their withdrawals start
then). It then waits until every
row is final and reports: final/stuck rows, twins upstream, uploads lost, time to all final,
withdrawals confirmed against assets still listed upstream, emails sent, and the longest time
from a person's completion to their stored group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from benchmarks.environment import ROOT
from benchmarks.results import Result

NAME = "faults"
QUEUES = "verification,withdrawals,emails,sweeps,uploads,default"
KILLS_AT = (6.0, 30.0, 50.0)  # seconds after the work was queued
OUTAGE = (15.0, 27.0)  # the broker is down between these
DEADLINE = 600.0
# People complete verification after the outage (while the broker is down nobody's confirmation
# can reach a worker: they wait for the broker), with a worker death still to come.
PHONES_AT = 40.0
GROUP_TARGET = 15.0  # seconds from a person's completion to their stored group


class OwnRedis:
    """redis-server on a free port of its own, in ``folder``."""

    def __init__(self, folder: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("the faults benchmark needs redis-server (apt install redis-server)")
        self.server = server
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - redis-server of our own
            [
                *(self.server, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def start_celery(env: Mapping[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    """``celery -A portal <args>`` in a process group of its own (killed whole)."""
    with log.open("ab") as output:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "celery", "-A", "portal", *args, "--loglevel", "WARNING"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        os.killpg(process.pid, sig)
        process.wait(timeout=30)


@contextmanager
def running(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    try:
        yield process
    finally:
        kill(process, signal.SIGTERM)


def run(workdir: Path, *, base_env: dict[str, str], port: int) -> list[Result]:
    from django.contrib.auth import get_user_model
    from django.db.models import Count

    from assets.models import Asset, WithdrawalItem
    from benchmarks.asset_pipeline import verified_person
    from consent.models import ConsentRecord, Person
    from consent.services import consent_revoke
    from mail.models import OutboundEmail
    from sandbox.models import SandboxAsset
    from sandbox.samples import make_image
    from sandbox.servers import gunicorn
    from verification.models import UpstreamSession
    from verification.services import invitations

    people = int(os.environ.get("BENCH_FAULT_PEOPLE", "6"))
    files = int(os.environ.get("BENCH_FAULT_FILES", "5"))
    rate = float(os.environ.get("BENCH_FAULT_RATE", "0.2"))
    redis = OwnRedis(workdir)
    redis.start()
    env = {
        **base_env,
        "CELERY_BROKER_URL": redis.url,
        "SANDBOX_FAULT_RATE_500": str(rate / 4),
        "SANDBOX_FAULT_RATE_502": str(rate / 4),
        "SANDBOX_FAULT_RATE_TIMEOUT": str(rate / 4),
        "SANDBOX_FAULT_RATE_DROP": str(rate / 4),
        # A hung call outlasts the client's read timeout (then the sandbox handles it anyway).
        "SANDBOX_TIMEOUT_SECONDS": "8",
        "ANYFAST_READ_TIMEOUT": "5",
        "ANYFAST_CREATE_READ_TIMEOUT": "6",
        "EMAIL_SWEEP_INTERVAL_SECONDS": "5",
        "ASSET_RESEND_AFTER_SECONDS": "20",
    }
    os.environ["CELERY_BROKER_URL"] = redis.url  # this process sends its tasks there too
    from portal.celery import app

    app.conf.broker_write_url = redis.url
    print(
        f"  faults: {people} people x {files} files, {people} verifications, {people} "
        f"invitations; {rate:.0%} faults; worker killed at {KILLS_AT} s, broker down {OUTAGE} s"
    )
    log = workdir / "faults-celery.log"
    staff = get_user_model().objects.create(username="bench-legal")
    try:
        with (
            gunicorn(env, port=port, workers=2, threads=8),
            running(start_celery(env, log, "beat")),
        ):
            workers = [start_celery(env, log, "worker", "-Q", QUEUES, "--concurrency", "2")]
            # The setup's calls go through the faulty sandbox too: retried by the client.
            uploaders = [_retrying(verified_person) for _ in range(people)]
            contents = [
                [
                    make_image(width=400, height=600, fmt="PNG", face="ada", label=f"{p}-{n}")
                    for n in range(files)
                ]
                for p in range(people)
            ]
            from django.core.files.uploadedfile import SimpleUploadedFile

            from assets.services import pipeline

            started = time.monotonic()
            for person, pictures in zip(uploaders, contents, strict=True):
                for n, picture in enumerate(pictures):
                    upload = SimpleUploadedFile(f"take-{n}.png", picture)
                    pipeline.asset_create(person=person, uploaded_file=upload, uploaded_by=None)
            completed: dict[int, float] = {}
            phones = []
            for n in range(people):
                person = Person.objects.create(
                    legal_name=f"Grace {n}", display_name="Grace", email=f"grace{n}@bench.test"
                )
                consent = _approved_consent(person)
                invitation = invitations.invitation_create(
                    person=person, consent=consent, created_by=staff
                )
                phones.append(invitation)
            invitees = []
            kills = list(KILLS_AT)
            outage_done = stopped = False
            revoked = False
            phone_started = False
            while True:
                elapsed = time.monotonic() - started
                if kills and elapsed >= kills[0]:
                    kills.pop(0)
                    kill(workers[-1])
                    print(f"  {elapsed:5.1f} s: worker killed")
                    workers.append(
                        start_celery(env, log, "worker", "-Q", QUEUES, "--concurrency", "2")
                    )
                if not stopped and elapsed >= OUTAGE[0]:
                    redis.stop()
                    stopped = True
                    print(f"  {elapsed:5.1f} s: broker stopped")
                if stopped and not revoked:
                    revoked = True
                    for person in uploaders[: people // 2]:
                        consent_revoke(
                            record=ConsentRecord.objects.in_force().get(person=person),
                            actor=staff,
                            channel="email",
                            reason="Benchmark: changed their mind.",
                        )
                    for n in range(people):
                        person = Person.objects.create(
                            legal_name=f"Invitee {n}",
                            display_name="Invitee",
                            email=f"invitee{n}@bench.test",
                        )
                        invitees.append(
                            invitations.invitation_create(
                                person=person, consent=_approved_consent(person), created_by=staff
                            )
                        )
                if stopped and not outage_done and elapsed >= OUTAGE[1]:
                    redis.start()
                    outage_done = True
                    print(f"  {elapsed:5.1f} s: broker back")
                if not phone_started and elapsed >= PHONES_AT:
                    phone_started = True  # people verify between two deaths of the worker
                    for invitation in phones:
                        _verify(invitation, completed)
                if outage_done and not kills and _all_final(uploaders, phones, invitees):
                    break
                if elapsed > DEADLINE:
                    print("  faults: deadline reached with rows still not final")
                    break
                time.sleep(0.5)
            wall = time.monotonic() - started
            for worker in workers:
                kill(worker, signal.SIGTERM)
    finally:
        redis.stop()

    assets = Asset.objects.filter(group__person__in=uploaders)
    final = assets.filter(status__in=[Asset.Status.ACTIVE, Asset.Status.WITHDRAWN, "failed"])
    twins = SandboxAsset.objects.values("name").annotate(n=Count("pk")).filter(n__gt=1).count()
    lost = (
        assets.filter(status=Asset.Status.ACTIVE)
        .exclude(upstream_id__in=SandboxAsset.objects.values("asset_id"))
        .count()
    )
    items = WithdrawalItem.objects.filter(asset__isnull=False)
    confirmed = items.filter(status=WithdrawalItem.Status.CONFIRMED)
    still_listed = SandboxAsset.objects.filter(
        asset_id__in=confirmed.exclude(asset__upstream_id="").values("asset__upstream_id")
    ).count()
    verified = UpstreamSession.objects.filter(
        invitation__in=phones, status=UpstreamSession.Status.CONFIRMED
    )
    waits = [
        (session.confirmed_at.timestamp() - completed[session.invitation_id])
        for session in verified
        if session.invitation_id in completed and session.confirmed_at
    ]
    emails = OutboundEmail.objects.all()
    sent = emails.filter(status="sent").count()
    total = assets.count()
    return [
        Result(
            NAME,
            "uploads final / stuck",
            f"{final.count()} / {total - final.count()}",
            f"{total} / 0",
            final.count() == total,
        ),
        Result(
            NAME,
            "twins upstream (one Name, two assets); uploads lost",
            f"{twins}; {lost}",
            "0; 0",
            twins == 0 and lost == 0,
        ),
        Result(NAME, "time until every row was final", f"{wall:.0f} s"),
        Result(
            NAME,
            "withdrawal items confirmed / their assets still listed upstream",
            f"{confirmed.count()} of {items.count()} / {still_listed}",
            f"{items.count()} / 0",
            confirmed.count() == items.count() and still_listed == 0,
        ),
        Result(
            NAME,
            "emails sent",
            f"{sent} of {emails.count()}",
            f"{emails.count()}",
            sent == emails.count(),
        ),
        Result(
            NAME,
            "people verified; longest completion to stored group",
            f"{len(waits)} of {people}; {max(waits, default=0):.1f} s",
            f"{people}; <= {GROUP_TARGET:.0f} s",
            len(waits) == people and max(waits, default=0) <= GROUP_TARGET,
        ),
    ]


def _approved_consent(person):  # type: ignore[no-untyped-def]
    from django.utils import timezone

    from consent.models import ConsentRecord

    consent = ConsentRecord.objects.create(
        person=person,
        consent_text_version="bench",
        intended_uses="Benchmark.",
        starts_on=timezone.localdate(),
        capture_method=ConsentRecord.CaptureMethod.E_SIGNATURE,
    )
    records = ConsentRecord.objects.filter(pk=consent.pk)
    records.update(status=ConsentRecord.Status.PENDING_REVIEW)
    records.update(status=ConsentRecord.Status.APPROVED, reviewed_at=timezone.now())
    return ConsentRecord.objects.get(pk=consent.pk)


def _verify(invitation, completed) -> None:  # type: ignore[no-untyped-def]
    """The person presses Start, completes on the phone, and the browser comes back."""
    from sandbox.testing import complete_session
    from verification.services import invitations, sessions

    for _ in range(5):  # a start the faulty upstream refuses is pressed again
        try:
            session = sessions.upstream_session_start(invitation=invitation, purpose="phone")
            break
        except invitations.UpstreamStartFailed:
            continue
    else:
        return
    token = session.byted_token or ""
    complete_session(token, identity="ada")
    completed[invitation.pk] = time.time()
    sessions.upstream_session_record_callback(
        public_id=session.public_id,
        params={"bytedToken": token, "resultCode": "10000"},
    )


def _retrying(make):  # type: ignore[no-untyped-def]
    """``make()``, again while the faulty upstream fails it (the setup, not the measure)."""
    from upstream import UpstreamError

    for _ in range(10):
        try:
            return make()
        except UpstreamError:
            time.sleep(0.5)
    return make()


def _all_final(uploaders, phones, invitees) -> bool:  # type: ignore[no-untyped-def]
    from assets.models import Asset, WithdrawalItem
    from mail.models import OutboundEmail
    from verification.models import UpstreamSession

    open_assets = Asset.objects.filter(
        group__person__in=uploaders, status__in=["queued", "uploading", "processing"]
    ).exists()
    open_items = WithdrawalItem.objects.filter(status=WithdrawalItem.Status.PENDING).exists()
    unverified = UpstreamSession.objects.filter(
        invitation__in=phones, status="confirmed"
    ).count() < len(phones)
    unsent = OutboundEmail.objects.exclude(status="sent").exists()
    return not (open_assets or open_items or unverified or unsent)
