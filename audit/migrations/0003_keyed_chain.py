"""Key the audit chain: every existing event is hashed again, in order from the first, with an
HMAC under the current ``AUDIT_CHAIN_KEY`` (``audit.chain``), and the old unkeyed head is kept
as the first anchor in ``AUDIT_ANCHOR_PATH`` (``legacy_hash``) next to the new head.

Every row is kept, with its content; only ``previous_hash``, ``hash`` and ``key_id`` change. The
append-only triggers are switched off around the rewrite, which only the table's owner (the
role that runs migrations) may do. Irreversible: going back would rewrite history again.
"""

import importlib
from typing import Any

from django.db import migrations, models
from django.utils import timezone

from audit.chain import CONTENT_FIELDS, content_of, current_key_id, keyed_hash
from audit.models import GENESIS_HASH

_BATCH = 5000
_UPDATE = "UPDATE audit_auditevent SET previous_hash = %s, hash = %s, key_id = %s WHERE id = %s"
_UPDATE_MANY = (
    "UPDATE audit_auditevent AS e SET previous_hash = v.p, hash = v.h, key_id = %s "
    "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, p, h) WHERE e.id = v.id"
)


def _triggers(schema_editor: Any, *, on: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        state = "ENABLE" if on else "DISABLE"
        schema_editor.execute(
            f"ALTER TABLE audit_auditevent {state} TRIGGER audit_event_append_only", params=None
        )
    elif vendor == "sqlite":
        triggers = importlib.import_module("audit.migrations.0002_append_only_triggers")
        for statement in triggers._SQLITE_UP if on else triggers._SQLITE_DOWN:
            schema_editor.execute(statement, params=None)


def rekey(apps: Any, schema_editor: Any) -> None:
    from audit.anchors import Anchor, append_anchor

    events = apps.get_model("audit", "AuditEvent").objects.order_by("pk")
    legacy_head = events.reverse().values_list("hash", flat=True).first()
    if legacy_head is None:
        return
    key_id = current_key_id()
    _triggers(schema_editor, on=False)
    previous, last_id, count = GENESIS_HASH, 0, 0
    with schema_editor.connection.cursor() as cursor:
        while True:
            rows = list(events.filter(pk__gt=last_id).values_list("pk", *CONTENT_FIELDS)[:_BATCH])
            if not rows:
                break
            updates = []
            for row in rows:
                content = content_of([*row[1:-2], previous, key_id])
                previous = keyed_hash(content)
                updates.append((content["previous_hash"], previous, key_id, row[0]))
            if schema_editor.connection.vendor == "postgresql":
                ids, previous_hashes, hashes = zip(*((u[3], u[0], u[1]) for u in updates))
                cursor.execute(_UPDATE_MANY, [key_id, list(ids), list(previous_hashes), list(hashes)])
            else:
                cursor.executemany(_UPDATE, updates)
            last_id, count = rows[-1][0], count + len(rows)
    _triggers(schema_editor, on=True)
    append_anchor(
        Anchor(
            last_id=last_id,
            hash=previous,
            key_id=key_id,
            count=count,
            at=timezone.now().isoformat(),
            legacy_hash=legacy_head,
            verified=True,  # hashed just now, under the key, from the first event
        )
    )


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only_triggers")]

    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(
                default="",
                help_text="The id of the chain key that hashed this event.",
                max_length=32,
            ),
        ),
        migrations.RunPython(rekey),
    ]
