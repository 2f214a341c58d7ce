"""The audit trail's periodic task: anchoring the chain's head outside the database."""

from __future__ import annotations

from audit.anchors import write_anchor
from portal.celery import app


@app.task(name="audit.tasks.anchor_audit_chain")
def anchor_audit_chain() -> dict[str, object] | None:
    """Beat sends it every ``AUDIT_ANCHOR_INTERVAL_SECONDS`` (at least daily)."""
    anchor = write_anchor()
    return None if anchor is None else {"last_id": anchor.last_id, "count": anchor.count}
