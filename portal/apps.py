from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PortalConfig(AppConfig):
    """The portal itself: settings, roles (``setup_roles``), the admin site, shared helpers."""

    default = True
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from portal.logredact import install_record_masking

        install_record_masking()  # no credential in any log record of this process


class PortalAdminConfig(admin_apps.AdminConfig):
    """Django's admin app, with the portal's site as ``admin.site`` (``portal.admin_site``)."""

    default = False
    default_site = "portal.admin_site.PortalAdminSite"
