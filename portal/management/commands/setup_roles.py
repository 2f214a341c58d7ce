"""``manage.py setup_roles``: the role groups, exactly as ``portal.roles.ROLES`` defines them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from portal.roles import UnknownPermissions, roles_apply


class Command(BaseCommand):
    help = (
        "Create the groups Onboarding, Legal and Producers and give each exactly the permissions "
        "of portal/roles.py, taking away any other (safe to run again; run it after migrate)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            changes = roles_apply()
        except UnknownPermissions as exc:
            raise CommandError(str(exc)) from exc
        for change in changes:
            name, count = change.role.name, len(change.role.permissions)
            count_text = f"{count} permission{'' if count == 1 else 's'}"
            if change.created:
                self.stdout.write(f"{name}: created with {count_text}.")
            elif change.added or change.removed:
                self.stdout.write(f"{name}: corrected to its {count_text}.")
                for permission in change.added:
                    self.stdout.write(f"  + {permission}")
                for permission in change.removed:
                    self.stdout.write(f"  - {permission}")
            else:
                self.stdout.write(f"{name}: already has exactly its {count_text}.")
