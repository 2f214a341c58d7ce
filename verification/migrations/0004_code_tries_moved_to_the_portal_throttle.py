"""Typed-code counts move to the portal's one shared throttle (``portal.ThrottleCount``).

Each address's count and window are carried over (key ``code:<address>``, the window ending
``CODE_WINDOW_SECONDS`` after it started), so a deployment in the middle of someone's guessing
gives them no fresh tries. Going back starts the counts clean: they last ten minutes.
"""

import datetime

from django.db import migrations

CODE_WINDOW_SECONDS = 600  # verification.throttle's, as it was when this migration was written


def carry_over(apps, schema_editor):
    CodeTries = apps.get_model("verification", "CodeTries")
    ThrottleCount = apps.get_model("portal", "ThrottleCount")
    window = datetime.timedelta(seconds=CODE_WINDOW_SECONDS)
    ThrottleCount.objects.bulk_create(
        [
            ThrottleCount(
                key=f"code:{row.address}",
                window_ends_at=row.window_started_at + window,
                taken=row.tries,
            )
            for row in CodeTries.objects.iterator()
        ],
        ignore_conflicts=True,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('portal', '0001_throttle_count'),
        ('verification', '0003_invitation_and_session_order_indexes'),
    ]

    operations = [
        migrations.RunPython(carry_over, migrations.RunPython.noop),
        migrations.DeleteModel(
            name='CodeTries',
        ),
    ]
