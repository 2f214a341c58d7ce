"""The upload pipeline with real Celery worker processes on Redis, against the sandbox.

The sandbox and the portal's signed file links are served by the live server in this process, so
the test holds a CreateAsset open (``HeldCreates``) while it kills the worker that
sent it, and then lets that create land upstream: the worker died, the asset exists upstream,
and the row says ``uploading``. While the worker lived, its lease was renewed past the lease's
length; once it is dead, beat's sweeper in a second worker must queue it again within a minute
(the shipped lease and sweep settings), find it by its Name and follow it to Active, with no twin.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from assets.models import Asset
from assets.services import pipeline
from sandbox import actions, counters
from sandbox.demo import demo_group_create
from sandbox.models import SandboxAsset
from sandbox.samples import make_image
from tests.celery_helpers import celery_worker, purge_queue, require_worker_services
from tests.factories import AssetGroupFactory
from tests.upstream_helpers import SANDBOX_KEY, HeldCreates

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

# The shipped lease (renewed every third of it while its worker lives).
LEASE_SECONDS = 30


def wait_for(condition: Callable[[], bool], what: str, *logs: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            output = "\n".join(log.log_path.read_text() for log in logs)
            pytest.fail(f"timed out waiting until {what}:\n{output}")
        time.sleep(0.2)


def test_a_worker_killed_mid_upload_leaves_nothing_stuck_and_no_twin(
    upstream, settings, private_files, tmp_path, monkeypatch
):
    require_worker_services()
    purge_queue()
    settings.SANDBOX_PROCESSING_SECONDS = 0
    held = HeldCreates()  # the first CreateAsset is held open until released, then handled
    monkeypatch.setitem(actions.ACTIONS, "CreateAsset", held.wrap(actions.ACTIONS["CreateAsset"]))

    worker_env = {
        "ANYFAST_BASE_URL": f"{upstream.url}/sandbox",
        "PORTAL_PUBLIC_URL": upstream.url,
        "ANYFAST_API_KEY": SANDBOX_KEY,
        "ANYFAST_RATE_LIMIT_REDIS_URL": "",
        "ANYFAST_RATE_LIMIT_FILE": str(tmp_path / "rate-limit.sqlite3"),
        "PRIVATE_MEDIA_ROOT": str(private_files),
        "ASSET_POLL_FIRST_SECONDS": "0",
    }
    group = AssetGroupFactory(
        verified=True, group_id=demo_group_create(api_key=SANDBOX_KEY, identity="ada").group_id
    )

    with celery_worker(tmp_path, env=worker_env, name="doomed") as doomed:
        asset = pipeline.asset_create(
            person=group.person,
            uploaded_file=SimpleUploadedFile(
                "face.png", make_image(width=400, height=600, fmt="PNG", face="ada")
            ),
            uploaded_by=None,
        )
        wait_for(
            lambda: counters.snapshot().get("CreateAsset", {}).get("calls") == 1,
            "the worker sent CreateAsset",
            doomed,
        )
        with celery_worker(tmp_path, env=worker_env, beat=True, name="rescuer") as rescuer:
            # A live worker's call outlasts its lease: the lease is renewed, nobody takes it.
            time.sleep(LEASE_SECONDS + 5)
            alive = Asset.objects.get(pk=asset.pk)
            assert (alive.status, alive.attempts) == (Asset.Status.UPLOADING, 1)

            doomed.send_signal(signal.SIGKILL)
            doomed.wait(timeout=30)
            killed_at = time.monotonic()
            # The create lands upstream although nobody is there to hear the answer.
            held.release(then_wait_for=1)
            assert SandboxAsset.objects.filter(name=asset.upstream_name).count() == 1

            wait_for(
                lambda: Asset.objects.get(pk=asset.pk).attempts == 2,
                "beat's sweeper reclaimed the dead worker's upload",
                rescuer,
            )
            assert time.monotonic() - killed_at < 60
            wait_for(
                lambda: Asset.objects.get(pk=asset.pk).status == Asset.Status.ACTIVE,
                "the reclaimed upload went Active",
                rescuer,
            )

    asset.refresh_from_db()
    copy = SandboxAsset.objects.get(name=asset.upstream_name)  # exactly one: no twin
    assert asset.upstream_id == copy.asset_id
    assert asset.attempts == 2
    assert counters.snapshot()["CreateAsset"]["calls"] == 1  # found by its Name, not re-created
