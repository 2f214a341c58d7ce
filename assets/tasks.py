"""The asset pipeline's Celery tasks: each names a row (or none) and calls a service.

The row is the truth (``assets.services``): a task that runs twice, late, or after another
worker died does no harm, and beat's sweeper makes up for any task that was lost.
"""

from __future__ import annotations

from assets.services import pipeline, retention, withdrawals
from portal.celery import app


@app.task(name="assets.tasks.submit_asset", ignore_result=True)
def submit_asset(asset_id: int) -> None:
    """Register one queued asset upstream (CreateAsset); a no-op unless it is queued and due."""
    pipeline.asset_submit(asset_id=asset_id)


@app.task(name="assets.tasks.sweep_assets", ignore_result=True)
def sweep_assets() -> dict[str, int]:
    """Queue stranded uploads again and check the assets processing upstream (beat)."""
    return pipeline.assets_sweep()


@app.task(name="assets.tasks.withdraw_item", ignore_result=True)
def withdraw_item(item_id: int) -> None:
    """Delete one withdrawn asset (or group) upstream; a no-op unless its item is pending, due
    and ready. A failure sets its next attempt and sends this task again for then."""
    withdrawals.withdrawal_item_process(item_id=item_id)


@app.task(name="assets.tasks.sweep_withdrawals", ignore_result=True)
def sweep_withdrawals() -> int:
    """Re-send withdrawal items whose task was lost or whose worker died (beat)."""
    return withdrawals.withdrawals_sweep()


@app.task(name="assets.tasks.notify_producers_of_withdrawal", ignore_result=True)
def notify_producers_of_withdrawal(withdrawal_id: int) -> None:
    """Tell the producers who copied a withdrawal's references (once per withdrawal)."""
    withdrawals.withdrawal_notify_producers(withdrawal_id=withdrawal_id)


@app.task(name="assets.tasks.apply_retention", ignore_result=True)
def apply_retention() -> int:
    """Destroy the biometric media retention allows to go (beat, daily); how many assets."""
    return sum(decision.destroy for decision in retention.retention_apply())
