"""One client process of the rate-limit benchmark: threads calling the sandbox through
``AnyfastClient`` as fast as the limiter allows, then a JSON report on stdout.

Run by ``benchmarks.upstream_ratelimit`` as ``python -m benchmarks.load_worker '<json>'`` with
``{"threads": {"GetAsset": 3, "ListAssets": 1, "CreateAsset": 1}, "asset_id", "group_id",
"upload_group_id", "image_url", "duration"}``; the limiter backend comes from the environment
(the portal's settings). Once set up it prints ``ready`` and reads the common start time (seconds
since 1970) from stdin, so that every process starts together however long start-up took. It
reports, per action, when each successful call was sent, the HTTP statuses of every attempt and
the errors.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any

import django


def run(config: dict[str, Any], start_at: float) -> dict[str, Any]:
    from upstream import AnyfastClient, Attempt, UpstreamError

    end_at = start_at + config["duration"]
    report: dict[str, Any] = {}
    lock = threading.Lock()

    def loop(action: str) -> None:
        stamps: list[float] = []
        statuses: Counter[str] = Counter()
        errors: Counter[str] = Counter()

        def on_attempt(attempt: Attempt) -> None:
            statuses[str(attempt.http_status)] += 1
            if attempt.outcome == "ok":
                # When the call left, as the limiter paced it (its answer came ``elapsed`` later).
                stamps.append(time.time() - attempt.elapsed)

        client = AnyfastClient(on_attempt=on_attempt)
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < end_at:
            try:
                if action == "GetAsset":
                    client.get_asset(config["asset_id"])
                elif action == "ListAssets":
                    client.list_assets(group_type="LivenessFace", group_ids=[config["group_id"]])
                else:
                    name = f"bench-{uuid.uuid4().hex}"
                    client.create_asset(
                        config["upload_group_id"], name, "Image", config["image_url"]
                    )
            except UpstreamError as error:
                errors[type(error).__name__] += 1
        with lock:
            mine = report.setdefault(action, {"stamps": [], "statuses": {}, "errors": {}})
            mine["stamps"] += stamps
            for name, counts in (("statuses", statuses), ("errors", errors)):
                for key, count in counts.items():
                    mine[name][key] = mine[name].get(key, 0) + count

    threads = [
        threading.Thread(target=loop, args=(action,))
        for action, count in config["threads"].items()
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return report


if __name__ == "__main__":
    django.setup()
    import upstream  # noqa: F401 - imported before the start, not during the run

    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    print(json.dumps(run(json.loads(sys.argv[1]), start_at)))
