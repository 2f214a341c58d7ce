import posixpath

from django.core.files.storage import default_storage
from django.db.models import Model, Q
from django.http import FileResponse, Http404, HttpRequest

from assets.models import Asset
from assets.signing import InvalidFileLink, file_name_from_token
from audit.services import audit_record
from consent.models import ConsentRecord
from portal.private_files import content_type_of_stored_name, private_file_response

# The folders whose files a signed link may name: asset files (assets.models.asset_file_path),
# which the upstream downloads, and consent documents (consent.models.consent_document_path).
ASSET_FOLDER = "assets/"
SIGNED_FOLDERS = (ASSET_FOLDER, "consent/")


def signed_file(request: HttpRequest, token: str, filename: str) -> FileResponse:
    """Serve the private file a signed link names, while the link is valid.

    Only names under ``SIGNED_FOLDERS`` are served. The Content-Type is the type measured from
    the bytes when the file was stored (the asset's row; for a consent document the extension
    it was stored under, which was itself derived from the bytes), never guessed from the name.
    Asset files are served inline, as the upstream downloads them; anything else as attachment.
    Each download is recorded in the audit trail: by whoever held the link, of the token's file
    (the token itself, a credential, is not recorded).
    """
    try:
        name = file_name_from_token(token)
    except InvalidFileLink as exc:
        raise Http404(str(exc)) from exc
    if posixpath.normpath(name) != name or not name.startswith(SIGNED_FOLDERS):
        raise Http404("This file cannot be shared by link.")
    if not default_storage.exists(name):
        raise Http404("This file no longer exists.")
    owner, person_id = _owner_of(name)
    measured = owner.content_type if isinstance(owner, Asset) else None
    audit_record(
        action="file.downloaded",
        obj=owner,
        actor_label="signed link (anonymous)",
        person_id=person_id,
        detail={"via": "signed link", "file": name, "method": request.method},
    )
    return private_file_response(
        default_storage.open(name, "rb"),
        content_type=measured or content_type_of_stored_name(name),
        filename=posixpath.basename(name),
        as_attachment=not name.startswith(ASSET_FOLDER),
    )


def _owner_of(name: str) -> tuple[Model | None, int | None]:
    """The row whose file ``name`` is (an asset, original or upstream copy, or a consent
    record's signed document) and the person it is of."""
    if name.startswith(ASSET_FOLDER):
        asset = (
            Asset.objects.filter(Q(file=name) | Q(upstream_copy=name))
            .select_related("group")
            .first()
        )
        return (asset, asset.group.person_id) if asset else (None, None)
    record = ConsentRecord.objects.filter(signed_document=name).first()
    return (record, record.person_id) if record else (None, None)
