"""The asset pipeline's Celery tasks: each names a row (or none) and calls a service.

The row is the truth (``assets.services``): a task that runs twice, late, or after another
worker died does no harm, and beat's sweeper makes up for any task that was lost.
"""

from __future__ import annotations

from assets import services
from portal.celery import app


@app.task(name="assets.tasks.submit_asset", ignore_result=True)
def submit_asset(asset_id: int) -> None:
    """Register one queued asset upstream (CreateAsset); a no-op unless it is queued and due."""
    services.asset_submit(asset_id=asset_id)


@app.task(name="assets.tasks.sweep_assets", ignore_result=True)
def sweep_assets() -> dict[str, int]:
    """Queue stranded uploads again and check the assets processing upstream (beat)."""
    return services.assets_sweep()
