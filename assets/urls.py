from django.urls import path

from assets import views

app_name = "assets"
urlpatterns = [
    path("<str:token>/<str:filename>", views.signed_file, name="signed-file"),
]
