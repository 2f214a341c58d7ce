"""``manage.py check_upstream``: is the upstream configuration usable, and if not, what to fix.

Checks, in order:

1. the base URL is reachable and serves ``/volc/asset/*``, and the API key is accepted: one
   ListAssets call (free and read-only, docs/upstream.md §2.1);
2. the key may verify people, i.e. it belongs to Anyfast's Byteplus-Direct token group: one
   CreateVisualValidateSession call, the only call the guide documents as refused to other keys
   (``GroupType must be one of [AIGC]``). It mints a session nobody opens, which simply expires.
   A read succeeding proves nothing here: ordinary keys may list assets too.

``--skip-session`` leaves the second check out; the key's capability is then unverified, which
the command says, exiting non-zero. It never prints the key, only its fingerprint, and exits
non-zero when a check fails.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser

from upstream import (
    AnyfastClient,
    AuthenticationFailed,
    EndpointNotFound,
    UpstreamError,
    UpstreamGroupType,
    UpstreamTimeout,
    UpstreamUnreachable,
    WrongTokenGroup,
    key_fingerprint,
)


class Command(BaseCommand):
    help = (
        "Check ANYFAST_BASE_URL and ANYFAST_API_KEY against the upstream, including that the key "
        "may verify people (starts one verification session, which expires unused)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--skip-session",
            action="store_true",
            help="Do not start a verification session: the key's capability stays unverified "
            "and the command exits non-zero.",
        )
        parser.add_argument(
            "--callback-url",
            default="",
            help="CallbackURL of the verification session (default: PORTAL_PUBLIC_URL).",
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

        try:
            # No retries: a configuration check should answer fast and say what it saw.
            client = AnyfastClient(read_retries=0)
        except ImproperlyConfigured as error:
            self._fail(str(error), "Write it as Action=<count>/<seconds>,… (see .env.example).")
            raise CommandError("upstream check failed") from None
        self.stdout.write(f"Rate limiter: {_describe(client)}")
        overrides = ", ".join(f"{a}={b}" for a, b in settings.ANYFAST_RATE_LIMITS.items())
        self.stdout.write(
            f"Budgets:      documented (docs/upstream.md §8); overrides: {overrides or 'none'}"
        )
        if self._check_access(client, base_url):
            if options["skip_session"]:
                self.failures += 1
                self.stdout.write(
                    self.style.WARNING("[??]   ")
                    + "UNVERIFIED: whether this key may verify people (LivenessFace, the "
                    "Byteplus-Direct token group). Only CreateVisualValidateSession shows it; "
                    "run without --skip-session."
                )
            else:
                self._check_session(client, options["callback_url"] or settings.PORTAL_PUBLIC_URL)

        if self.failures:
            raise CommandError(
                f"upstream check failed: {self.failures} problem(s) or unverified check(s), "
                "see above"
            )
        self.stdout.write(self.style.SUCCESS("The upstream configuration works."))

    def _check_access(self, client: AnyfastClient, base_url: str) -> bool:
        """Reachable, serving the API, and accepting the key (one ListAssets)."""
        try:
            client.list_assets(group_type=UpstreamGroupType.LIVENESS_FACE, page_size=1)
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
            self._ok("The upstream is reachable and the API key is accepted (ListAssets).")
            return True
        return False

    def _check_session(self, client: AnyfastClient, callback_url: str) -> None:
        try:
            started = client.create_visual_validate_session(callback_url)
        except WrongTokenGroup as error:
            self._fail(f"The API key cannot verify people: {error}", error.explanation)
        except UpstreamError as error:
            self._fail(f"CreateVisualValidateSession failed: {error}", error.explanation)
        else:
            self._ok(
                "The API key may verify people: a verification session was created "
                f"(BytedToken {started.byted_token[:14]}..., it expires unused)."
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
