"""One client process of the rate-limit benchmark: threads calling the sandbox through
``AnyfastClient`` as fast as the limiter allows, then a JSON report on stdout.

Run by ``benchmarks.upstream_ratelimit`` as ``python -m benchmarks.load_worker '<json>'`` with
``{"threads": {"GetAsset": 3, "ListAssets": 1}, "asset_id", "group_id", "start_at",
"duration"}``; the limiter backend comes from the environment (the portal's settings).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter
from typing import Any

import django


def run(config: dict[str, Any]) -> dict[str, Any]:
    from assets.upstream import AnyfastClient, Attempt, UpstreamError

    start_at, end_at = config["start_at"], config["start_at"] + config["duration"]
    report: dict[str, Any] = {}
    lock = threading.Lock()

    def loop(action: str) -> None:
        stamps: list[float] = []
        statuses: Counter[str] = Counter()
        errors: Counter[str] = Counter()

        def on_attempt(attempt: Attempt) -> None:
            statuses[str(attempt.http_status)] += 1

        client = AnyfastClient(on_attempt=on_attempt)
        time.sleep(max(0.0, start_at - time.time()))
        while time.time() < end_at:
            try:
                if action == "GetAsset":
                    client.get_asset(config["asset_id"])
                else:
                    client.list_assets(group_type="LivenessFace", group_ids=[config["group_id"]])
            except UpstreamError as error:
                errors[type(error).__name__] += 1
                continue
            stamps.append(time.time())
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
    print(json.dumps(run(json.loads(sys.argv[1]))))
