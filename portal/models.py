"""The portal's own tables: what every app shares and no workflow owns."""

from __future__ import annotations

from django.db import models


class ThrottleCount(models.Model):
    """How many times one key was counted in its current window (``portal.throttle``): one row
    per key, counted by one atomic statement so that every web process and thread shares it.

    A key names what is limited and for whom (``code:<client address>``,
    ``me-link:address:<digest>``): never a secret or a raw email address.
    """

    key = models.CharField(max_length=128, unique=True)
    window_ends_at = models.DateTimeField(db_index=True)
    taken = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "throttle count"
        verbose_name_plural = "throttle counts"
        default_permissions = ()

    def __str__(self) -> str:
        return f"{self.key}: {self.taken}"
