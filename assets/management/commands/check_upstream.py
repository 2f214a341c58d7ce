"""``manage.py check_upstream``: is the upstream configuration usable, and if not, what to fix.

Checks, in order, with one harmless call (ListAssets, free and read-only, docs/upstream.md §2.1):

1. the base URL is reachable and serves ``/volc/asset/*``;
2. the API key is accepted (401 → the key is wrong);
3. the key may use LivenessFace (real-human) assets, i.e. it belongs to the Byteplus-Direct token
   group: ListAssets with ``GroupType: LivenessFace`` answers ``GroupType must be one of [AIGC]``
   for an ordinary key (the sandbox does so; on the live API the guide documents that answer for
   verification sessions, docs/upstream.md §5.2 "and any LivenessFace use").

``--create-session`` adds the call the guide's troubleshooting row is about,
CreateVisualValidateSession. It creates a real (free, unused) verification session that simply
expires, so it is opt-in.

Never prints the key, only its fingerprint. Exits non-zero when a check fails.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from assets.upstream import (
    AnyfastClient,
    AuthenticationFailed,
    EndpointNotFound,
    GroupType,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    WrongTokenGroup,
    key_fingerprint,
)


class Command(BaseCommand):
    help = "Check ANYFAST_BASE_URL and ANYFAST_API_KEY against the upstream and say what to fix."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--create-session",
            action="store_true",
            help="Also start a verification session (creates an unused session that expires).",
        )
        parser.add_argument(
            "--callback-url",
            default="",
            help="CallbackURL for --create-session (default: PORTAL_PUBLIC_URL).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.failures = 0
        base_url = settings.ANYFAST_BASE_URL
        api_key = settings.ANYFAST_API_KEY
        self.stdout.write(f"Upstream:     {base_url}")
        self.stdout.write(f"API key:      {key_fingerprint(api_key) or '(not set)'}")
        if not api_key:
            self._fail(
                "ANYFAST_API_KEY is empty.",
                "Set it to an Anyfast key of the Byteplus-Direct group.",
            )
            raise CommandError("upstream check failed")
        if base_url.rstrip("/").endswith("/volc/asset"):
            self._fail(
                "ANYFAST_BASE_URL ends with /volc/asset.",
                "Give only the host, e.g. https://www.anyfast.ai; the client adds the path.",
            )

        # No retries: a configuration check should answer fast and say what it saw.
        client = AnyfastClient(read_retries=0)
        self.stdout.write(f"Rate limiter: {_describe(client)}")
        try:
            page = client.list_assets(group_type=GroupType.LIVENESS_FACE, page_size=1)
        except (UpstreamUnreachable, UpstreamTimeout, EndpointNotFound) as error:
            self._fail(f"The upstream is not usable at {base_url}: {error}", error.explanation)
        except AuthenticationFailed as error:
            self._ok("The upstream is reachable.")
            self._fail(f"The API key was refused: {error}", error.explanation)
        except WrongTokenGroup as error:
            self._ok("The upstream is reachable and the API key is accepted.")
            self._fail(f"The API key cannot use real-human assets: {error}", error.explanation)
        except UpstreamError as error:
            self._fail(f"ListAssets failed: {error}", error.explanation)
        else:
            self._ok("The upstream is reachable and the API key is accepted.")
            self._ok(
                "The API key may use LivenessFace (real-human) assets "
                f"({page.total_count} visible to it)."
            )
            if options["create_session"]:
                self._check_session(client, options["callback_url"] or settings.PORTAL_PUBLIC_URL)
            else:
                self.stdout.write(
                    "  (Run with --create-session to also start a verification session, the "
                    "call the Byteplus-Direct requirement is documented for.)"
                )

        if self.failures:
            raise CommandError(f"upstream check failed: {self.failures} problem(s), see above")
        self.stdout.write(self.style.SUCCESS("The upstream configuration works."))

    def _check_session(self, client: AnyfastClient, callback_url: str) -> None:
        try:
            started = client.create_visual_validate_session(callback_url)
        except UpstreamError as error:
            self._fail(f"CreateVisualValidateSession failed: {error}", error.explanation)
            return
        self._ok(
            "A verification session was created (it expires unused): "
            f"BytedToken {started.byted_token[:14]}..."
        )

    def _ok(self, text: str) -> None:
        self.stdout.write(self.style.SUCCESS("[ok]   ") + text)

    def _fail(self, text: str, fix: str) -> None:
        self.failures += 1
        self.stdout.write(self.style.ERROR("[FAIL] ") + text)
        self.stdout.write(f"       Fix: {fix}")


def _describe(client: AnyfastClient) -> str:
    describe = getattr(client.rate_limiter, "describe", None)
    return describe() if callable(describe) else type(client.rate_limiter).__name__
