import mimetypes

from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest

from assets.signing import InvalidFileLink, file_name_from_token


def signed_file(request: HttpRequest, token: str, filename: str) -> FileResponse:
    """Serve the private file a signed link names, while the link is valid."""
    try:
        name = file_name_from_token(token)
    except InvalidFileLink as exc:
        raise Http404(str(exc)) from exc
    if not default_storage.exists(name):
        raise Http404("This file no longer exists.")
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    response = FileResponse(default_storage.open(name, "rb"), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Robots-Tag"] = "noindex"
    return response
