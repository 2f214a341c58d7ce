"""gunicorn's configuration for the portal: ``gunicorn -c portal/gunicorn.conf.py portal.wsgi``.

The Procfile's web process passes the rest (address, workers, threads, timeout, access log) on
its command line. gunicorn's control socket (``gunicornc``) lives in the portal's var folder:
its default, one path for every gunicorn of the user, let one server take another's.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from portal.logredact import install_record_masking, mask_secrets
from portal.settings import VAR_DIR


class RedactingLogger(Logger):
    """gunicorn's logger with credentials masked in the access log (``mask_secrets``).

    Signed file links (``/files/<token>/<name>``: the upstream downloads asset files there),
    invitation links (``/verify/<token>/``), ``code=`` and the callback's ``bytedToken=``: every
    logged value (request line, path, query, referer, headers) is masked.
    """

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> dict:
        return {
            key: mask_secrets(value) if isinstance(value, str) else value
            for key, value in super().atoms(resp, req, environ, request_time).items()
        }


logger_class = RedactingLogger
install_record_masking()  # gunicorn's own error log too
# At most 107 bytes for a Unix socket: with a longer PORTAL_VAR_DIR gunicorn runs without one
# (and logs a warning).
control_socket = str(VAR_DIR / "gunicorn.ctl")
