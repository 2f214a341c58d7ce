from django.contrib.admin.apps import AdminConfig


class PortalAdminConfig(AdminConfig):
    """Django's admin app, with the portal's site as ``admin.site`` (``portal.admin_site``)."""

    default_site = "portal.admin_site.PortalAdminSite"
