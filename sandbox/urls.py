app_name = "sandbox"
urlpatterns: list = []  # filled in by the sandbox issue
