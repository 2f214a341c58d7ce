from django.apps import AppConfig


class AssetsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "assets"
    verbose_name = "Likeness assets"

    def ready(self) -> None:
        # HEIC/HEIF portraits from phones open through Pillow once the plugin is registered.
        from pillow_heif import register_heif_opener

        register_heif_opener()
