from django.apps import AppConfig


class AuditConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        from audit import context, dbroles  # noqa: F401 - dbroles registers its check

        context.connect_celery_signals()
