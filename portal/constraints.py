"""Database constraints whose violations read, in a form, like any other field error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, models
from django.db.models import Q
from django.db.models.constants import LOOKUP_SEP


class FieldCheckConstraint(models.CheckConstraint):
    """A ``CheckConstraint`` whose violation model validation reports on ``field``.

    Django reports a check constraint's violation as an error of the whole row; naming the field
    it concerns puts ``violation_error_message`` next to that field in the admin (model forms run
    the constraint, the same rule the database enforces, before saving). The constraint is
    checked only when none of the fields it reads is excluded from validation, so ``field``
    (one of those) is always on the form that checks it. The database and migrations see an
    ordinary ``CheckConstraint``.
    """

    def __init__(self, *, field: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(self.condition, Q) or field not in _fields_read(self.condition):
            raise ValueError(f"{self.name}: its condition does not read {field!r}")
        self.field = field

    def validate(
        self,
        model: type[models.Model],
        instance: models.Model,
        exclude: set[str] | None = None,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        try:
            super().validate(model, instance, exclude=exclude, using=using)
        except ValidationError as violation:
            raise ValidationError({self.field: violation}) from violation

    def deconstruct(self) -> tuple[str, Sequence[Any], dict[str, Any]]:
        _, args, kwargs = super().deconstruct()
        return "django.db.models.CheckConstraint", args, kwargs

    def clone(self) -> FieldCheckConstraint:
        _, args, kwargs = self.deconstruct()
        return self.__class__(*args, field=self.field, **kwargs)


def _fields_read(condition: Q) -> set[str]:
    """The model fields a ``Q`` condition's lookups test (the left side of each)."""
    fields = set()
    children: list[Any] = list(condition.children)
    for child in children:
        if isinstance(child, Q):
            fields |= _fields_read(child)
        else:
            lookup, _ = child
            fields.add(lookup.split(LOOKUP_SEP)[0])
    return fields
