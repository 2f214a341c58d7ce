from django.urls import path

from assets import references, views

app_name = "assets"
urlpatterns = [
    path("<str:token>/<str:filename>", views.signed_file, name="signed-file"),
]

# Mounted at /references/ (portal.urls) in the namespace "references".
references_patterns = [
    path("", references.references_view, name="list"),
    path("copy/", references.copy_view, name="copy"),
    path("thumbnails/<int:asset_id>.jpg", references.thumbnail_view, name="thumbnail"),
    path(
        "notices/<int:notice_id>/acknowledge/",
        references.acknowledge_view,
        name="acknowledge",
    ),
]
