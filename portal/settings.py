"""The portal's only settings module.

Everything comes from the environment (or an optional ``.env`` beside ``manage.py``). With
``DEBUG=true`` and nothing else the portal runs on embedded defaults meant for a laptop: SQLite,
private files under ``var/``, Celery on kombu's ``filesystem://`` broker, email to the console
and the built-in sandbox upstream. Without it (production) it needs the variables listed in
``.env.example`` and refuses to start when one of its secrets is missing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# Off unless asked for: a deployment that forgets DEBUG must not run in debug mode with the
# sandbox. bin/dev, bin/test and pytest (pyproject's [tool.pytest_env]) turn it on.
DEBUG = env.bool("DEBUG", default=False)
VAR_DIR = Path(env.str("PORTAL_VAR_DIR", default=str(BASE_DIR / "var")))
# The embedded defaults keep their database, private files and broker queue under var/.
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Secrets and production guard -------------------------------------------------------------
# Development gets working throwaway values; production must name every secret explicitly.
_DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production-0123456789"  # noqa: S105
# Production also names its broker and mail server: the embedded filesystem broker and console
# email would otherwise lose tasks across machines and silently drop invitations.
PRODUCTION_REQUIRED = (
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "PORTAL_PUBLIC_URL",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "EMAIL_URL",
    "AUDIT_CHAIN_KEY",
)

# The sandbox accepts any API key and downloads any URL it is given: development only.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)

if not DEBUG:
    if SANDBOX_ENABLED:
        raise ImproperlyConfigured(
            "SANDBOX_ENABLED=true is refused with DEBUG=false: the sandbox is a development "
            "stand-in that accepts any API key and fetches any URL. Unset SANDBOX_ENABLED."
        )
    # A value of only spaces counts as missing (a stray " " in a deployment's variables).
    missing = [
        name
        for name in (*PRODUCTION_REQUIRED, "ANYFAST_API_KEY")
        if not env.str(name, default="").strip()
    ]
    if missing:
        raise ImproperlyConfigured(
            "DEBUG=false needs these environment variables: " + ", ".join(missing)
        )

SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY).strip()
ALLOWED_HOSTS = [
    host.strip()
    for host in env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
    if host.strip()
]
if not DEBUG and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS='*' is refused with DEBUG=false: name the portal's host names, "
        "e.g. ALLOWED_HOSTS=portal.example.com (with '*' any Host header is believed)"
    )
PORTAL_PUBLIC_URL = env.str("PORTAL_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
if not DEBUG and not PORTAL_PUBLIC_URL.lower().startswith("https://"):
    raise ImproperlyConfigured(
        "PORTAL_PUBLIC_URL must be an https:// address with DEBUG=false: the upstream downloads "
        "asset files through signed links on it and people's phones return to it"
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PORTAL_PUBLIC_URL])

# --- Applications -----------------------------------------------------------------------------
INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",  # django.contrib.admin with the portal's admin site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "axes",
    "csp",
    # Second sign-in factor of superusers and Legal (portal.two_factor): authenticator apps
    # (TOTP) and one-time recovery codes.
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "portal",
    "consent",
    "verification",
    "assets",
    "mail",
    "audit",
]
if SANDBOX_ENABLED:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    # First, so that an oversized body is refused before anything reads it.
    "portal.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "audit.context.RequestIdMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one SQLite file in development: wait for locks
    # instead of failing at once, and let readers proceed beside a writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
else:
    # PostgreSQL's planner assumes by default (random_page_cost = 4) that a row read through an
    # index costs four sequential reads: right for spinning disks, wrong for a database on SSD
    # or in memory, where it then joins whole tables (50,000 people) by hash to show a page of
    # 100 (issue 16, measured: the People queues 2x, the admin home 1.6x, search 5x slower). The
    # portal's sessions plan with DATABASE_RANDOM_PAGE_COST (1.1, the usual value for SSDs),
    # passed at connection (no query more); an `options` given in DATABASE_URL is kept instead,
    # and an empty value passes none (a PgBouncer refuses them: set it on the server then).
    if random_page_cost := env.str("DATABASE_RANDOM_PAGE_COST", default="1.1"):
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
            "options", f"-c random_page_cost={float(random_page_cost)}"
        )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文"), ("zh-hant", "繁體中文")]
# Times with seconds and the time zone on every admin page (portal/formats/en/formats.py).
FORMAT_MODULE_PATH = ["portal.formats"]
# The person's pages and emails (consent) in zh-Hans and zh-Hant; the .mo files are committed.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Files ------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# In development WhiteNoise serves straight from the apps' static folders (no collectstatic).
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STATICFILES_DIRS = [BASE_DIR / "static"]
PRIVATE_MEDIA_ROOT = Path(env.str("PRIVATE_MEDIA_ROOT", default=str(VAR_DIR / "private")))
# Every uploaded file is private (faces, voices, consent documents), so the default storage has
# no public URL: files leave the portal only through signed, expiring links (assets.signing) or
# an authorised admin session.
PRIVATE_FILE_URL_MAX_AGE = env.int("PRIVATE_FILE_URL_MAX_AGE", default=15 * 60)
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _private_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "default_acl": "private",
            "querystring_auth": True,
            "querystring_expire": PRIVATE_FILE_URL_MAX_AGE,
            "file_overwrite": False,
            "location": "private",
        },
    }
else:
    _private_storage = {
        "BACKEND": "portal.storage.PrivateFileSystemStorage",
        "OPTIONS": {"location": PRIVATE_MEDIA_ROOT, "base_url": None},
    }
STORAGES = {
    "default": _private_storage,
    "staticfiles": {
        "BACKEND": env.str(
            "STATICFILES_BACKEND",
            default="whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage",
        )
    },
}
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Private files are readable by the portal's own user only (PrivateFileSystemStorage applies
# the same modes itself); give the process a user of its own.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700
# Signed consent documents (PDF, JPEG or PNG: consent.documents) may be at most this many bytes.
CONSENT_DOCUMENT_MAX_BYTES = env.int("CONSENT_DOCUMENT_MAX_BYTES", default=20 * 1024 * 1024)
# Warn staff, before an upload is spent, when a picture shows no face or several (OpenCV's face
# cascade, assets.media.face_precheck): a hint, never a refusal.
MEDIA_FACE_PRECHECK = env.bool("MEDIA_FACE_PRECHECK", default=True)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# --- Email ------------------------------------------------------------------------------------
# EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587 in production.
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
EMAIL_PORT = _email["EMAIL_PORT"] or 25
EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"] or str(VAR_DIR / "mail")
DEFAULT_FROM_EMAIL = env.str(
    "DEFAULT_FROM_EMAIL", default="Talent Consent Portal <portal@localhost>"
)

# --- The audit trail (audit/) ------------------------------------------------------------------
# Each event's hash is an HMAC-SHA256 under a key the database never holds (audit.chain), so
# whoever can write the audit table still cannot recompute the chain. "<key id>:<secret>"; the
# key id is stored with every event it hashes. To rotate, move the current key to
# AUDIT_CHAIN_RETIRED_KEYS (still checked, never used to write) and set a new one.
_DEV_AUDIT_CHAIN_KEY = "dev:development-only-audit-chain-key-never-use-in-production"


def _audit_chain_keys(values: list[str]) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for value in values:
        key_id, _, secret = value.strip().partition(":")
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,32}", key_id) or len(secret) < 32:
            raise ImproperlyConfigured(
                "AUDIT_CHAIN_KEY and AUDIT_CHAIN_RETIRED_KEYS take '<key id>:<secret>': an id of "
                "letters, digits, '.', '_' or '-' (at most 32) and a random secret of at least 32 "
                "characters"
            )
        keys[key_id] = secret.encode()
    return keys


_current_audit_key = _audit_chain_keys([env.str("AUDIT_CHAIN_KEY", default=_DEV_AUDIT_CHAIN_KEY)])
if not DEBUG and _DEV_AUDIT_CHAIN_KEY.partition(":")[2].encode() in _current_audit_key.values():
    raise ImproperlyConfigured("AUDIT_CHAIN_KEY must not be the development key with DEBUG=false")
AUDIT_CHAIN_KEY_ID = next(iter(_current_audit_key))
AUDIT_CHAIN_KEYS = {
    **_audit_chain_keys(
        [value for value in env.list("AUDIT_CHAIN_RETIRED_KEYS", default=[]) if value.strip()]
    ),
    **_current_audit_key,
}
# Beat writes the chain's head (an anchor) to this append-only JSON-lines file, outside the
# database, and mails it to AUDIT_ANCHOR_EMAIL when set; verify_audit checks every anchor in it.
AUDIT_ANCHOR_PATH = Path(env.str("AUDIT_ANCHOR_PATH", default=str(VAR_DIR / "audit-anchors.jsonl")))
AUDIT_ANCHOR_EMAIL = env.list("AUDIT_ANCHOR_EMAIL", default=[])
AUDIT_ANCHOR_INTERVAL_SECONDS = env.float("AUDIT_ANCHOR_INTERVAL_SECONDS", default=24 * 3600.0)
if not 0 < AUDIT_ANCHOR_INTERVAL_SECONDS <= 24 * 3600:
    raise ImproperlyConfigured("AUDIT_ANCHOR_INTERVAL_SECONDS must be at most a day (86400)")

# --- Real-person verification (consent.services) --------------------------------------------
# How long an invitation link (and its short code) works, and how many upstream sessions a person
# may start from one invitation (each Start press uses one; see UpstreamSession.attempts).
# Who invites people, as their pages and emails name it.
PORTAL_ORGANISATION_NAME = env.str("PORTAL_ORGANISATION_NAME", default="The studio")
VERIFICATION_INVITATION_TTL_DAYS = env.int("VERIFICATION_INVITATION_TTL_DAYS", default=7)
VERIFICATION_MAX_ATTEMPTS = env.int("VERIFICATION_MAX_ATTEMPTS", default=5)
# Beat polls pending upstream sessions this often (GetVisualValidateResult, 3/s for the whole
# deployment): with the 5-second cadence of consent.services.poll_interval, a person who completes
# and closes the phone without reaching the callback page is confirmed within about 15 s.
VERIFICATION_POLL_SWEEP_SECONDS = env.float("VERIFICATION_POLL_SWEEP_SECONDS", default=10.0)
# One GetVisualValidateResult may take this long, retries included (it answers in well under a
# second): a hung call delays a confirmation by this much, and the next poll asks again.
VERIFICATION_POLL_CALL_SECONDS = env.float("VERIFICATION_POLL_CALL_SECONDS", default=3.0)
# "Start verification" waits this long for the upstream's session (retries included), then shows
# the person a page to try again: the page answers within 10 s however the upstream hangs.
VERIFICATION_START_TIMEOUT_SECONDS = env.float("VERIFICATION_START_TIMEOUT_SECONDS", default=8.0)

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
# How long a request waits for the broker before giving up on sending a task, in seconds.
BROKER_SOCKET_TIMEOUT = env.float("CELERY_BROKER_SOCKET_TIMEOUT", default=2.0)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_SOCKET_TIMEOUT
# One quick retry of a publish, then the failure is the sweepers' (portal.queue): a broker outage
# costs a request about a second, never a 500.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_FILESYSTEM_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FILESYSTEM_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_FILESYSTEM_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_FILESYSTEM_DIR / "processed"),
        # Broadcast (pidbox) exchanges; kombu's default is ./control in the working directory.
        "control_folder": str(CELERY_BROKER_FILESYSTEM_DIR / "control"),
        "store_processed": False,
    }
    # kombu's filesystem transport needs its folders before the first worker starts.
    (CELERY_BROKER_FILESYSTEM_DIR / "queue").mkdir(parents=True, exist_ok=True)
    (CELERY_BROKER_FILESYSTEM_DIR / "processed").mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A message a worker took but never acknowledged (acks late: the worker died) goes back
        # to its queue after this long. Longer than a task may run (CELERY_TASK_TIME_LIMIT) and
        # than any countdown the tasks use (ASSET_RETRY_MAX_SECONDS), so that a live worker's
        # message is never delivered twice; a dead worker's rows do not wait for it (their
        # leases lapse within a minute and the sweepers send them again: a late copy of the
        # message finds its row claimed or settled and does nothing).
        "visibility_timeout": env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=11 * 60),
        # Publishing fails fast when Redis is away (a committed request never waits on it:
        # portal.queue logs the failure and the sweepers send the task later).
        "socket_connect_timeout": BROKER_SOCKET_TIMEOUT,
        "socket_timeout": BROKER_SOCKET_TIMEOUT,
        # Every key the broker writes starts with this: deployments (or test runs) sharing one
        # Redis database keep apart.
        "global_keyprefix": env.str("CELERY_BROKER_KEY_PREFIX", default=""),
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Acknowledged once done, and sent again when the worker process dies: every task is idempotent
# (it claims its row by a conditional UPDATE, so a second copy does nothing).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Queues by urgency: a backlog of uploads never delays a withdrawal, a verification or a sweep.
# Locally one worker consumes them all (Procfile); production scales a worker per queue.
CELERY_TASK_DEFAULT_QUEUE = "default"
WORKER_QUEUES = ("verification", "withdrawals", "emails", "sweeps", "uploads", "default")
CELERY_TASK_ROUTES = {
    "verification.tasks.confirm_upstream_session": {"queue": "verification"},
    "verification.tasks.poll_upstream_sessions": {"queue": "verification"},
    "assets.tasks.withdraw_item": {"queue": "withdrawals"},
    "assets.tasks.notify_producers_of_withdrawal": {"queue": "withdrawals"},
    "mail.tasks.send_email": {"queue": "emails"},
    "assets.tasks.submit_asset": {"queue": "uploads"},
    "assets.tasks.sweep_assets": {"queue": "sweeps"},
    "assets.tasks.sweep_withdrawals": {"queue": "sweeps"},
    "mail.tasks.sweep_emails": {"queue": "sweeps"},
    "assets.tasks.apply_retention": {"queue": "sweeps"},
    "verification.tasks.expire_invitations": {"queue": "sweeps"},
    "consent.tasks.expire_consents": {"queue": "sweeps"},
    "consent.tasks.warn_expiring_consents": {"queue": "sweeps"},
    "portal.tasks.record_heartbeat": {"queue": "sweeps"},
    "audit.tasks.anchor_audit_chain": {"queue": "sweeps"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 10 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 9 * 60
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat's DatabaseScheduler copies these into its tables at start, where the admin can edit them.
HEARTBEAT_INTERVAL_SECONDS = 60
# How often beat sends the asset sweeper: it queues again uploads whose worker died, re-sends
# lost ones, and checks the assets processing upstream (assets.services.assets_sweep).
ASSET_SWEEP_INTERVAL_SECONDS = env.float("ASSET_SWEEP_INTERVAL_SECONDS", default=3.0)
# How often beat re-sends withdrawal items whose task was lost or whose worker died
# (assets.services.withdrawals_sweep).
# A dead worker's item is sent again within its lease and two of these.
WITHDRAWAL_SWEEP_INTERVAL_SECONDS = env.float("WITHDRAWAL_SWEEP_INTERVAL_SECONDS", default=10.0)
# How often beat re-sends queued emails whose task was lost (mail.services.emails_sweep).
EMAIL_SWEEP_INTERVAL_SECONDS = env.float("EMAIL_SWEEP_INTERVAL_SECONDS", default=30.0)
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "portal.tasks.record_heartbeat",
        "schedule": float(HEARTBEAT_INTERVAL_SECONDS),
    },
    # People who complete verification but never reach the callback page (VERIFICATION_*).
    "poll-upstream-verifications": {
        "task": "verification.tasks.poll_upstream_sessions",
        "schedule": VERIFICATION_POLL_SWEEP_SECONDS,
        # A sweep that waited in the queue past the next one is dropped, not run late
        # (django-celery-beat's name for Celery's ``expires``).
        "options": {"expire_seconds": max(int(VERIFICATION_POLL_SWEEP_SECONDS), 1)},
    },
    "expire-invitations": {
        "task": "verification.tasks.expire_invitations",
        "schedule": 600.0,
    },
    "assets-sweep": {
        "task": "assets.tasks.sweep_assets",
        "schedule": ASSET_SWEEP_INTERVAL_SECONDS,
        # A sweep still queued when the next is sent is dropped: they do not pile up behind a
        # busy worker (django-celery-beat's name for Celery's ``expires``).
        "options": {"expire_seconds": max(int(ASSET_SWEEP_INTERVAL_SECONDS * 2), 1)},
    },
    "withdrawals-sweep": {
        "task": "assets.tasks.sweep_withdrawals",
        "schedule": WITHDRAWAL_SWEEP_INTERVAL_SECONDS,
        "options": {"expire_seconds": max(int(WITHDRAWAL_SWEEP_INTERVAL_SECONDS), 1)},
    },
    # Consents past their end date end (and their withdrawal starts) within the hour after
    # midnight; the warnings before the end go out the same way.
    "expire-consents": {
        "task": "consent.tasks.expire_consents",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3600},
    },
    "warn-expiring-consents": {
        "task": "consent.tasks.warn_expiring_consents",
        "schedule": 3600.0,
        "options": {"expire_seconds": 3600},
    },
    # Emails whose task message was lost (a broker outage, a dead worker): sent again.
    "emails-sweep": {
        "task": "mail.tasks.sweep_emails",
        "schedule": EMAIL_SWEEP_INTERVAL_SECONDS,
        "options": {"expire_seconds": max(int(EMAIL_SWEEP_INTERVAL_SECONDS), 1)},
    },
    "apply-retention": {
        "task": "assets.tasks.apply_retention",
        "schedule": 24 * 3600.0,
        "options": {"expire_seconds": 3600},
    },
    # The audit chain's head, written outside the database (AUDIT_ANCHOR_*).
    "anchor-audit-chain": {
        "task": "audit.tasks.anchor_audit_chain",
        "schedule": AUDIT_ANCHOR_INTERVAL_SECONDS,
    },
}
CELERY_TIMEZONE = TIME_ZONE

# --- The upstream (Anyfast /volc/asset/*) -----------------------------------------------------
# In development the client talks to the sandbox app mounted at /sandbox on this same server.
ANYFAST_BASE_URL = env.str(
    "ANYFAST_BASE_URL",
    default=f"{PORTAL_PUBLIC_URL}/sandbox" if SANDBOX_ENABLED else "https://www.anyfast.ai",
).rstrip("/")
if not DEBUG and not ANYFAST_BASE_URL.lower().startswith("https://"):
    raise ImproperlyConfigured(
        "ANYFAST_BASE_URL must be an https:// address with DEBUG=false: every call carries the "
        "API key and people's verification links"
    )
# Only the sandbox gets a default key; it accepts any. Production requires a real one (above).
ANYFAST_API_KEY = env.str(
    "ANYFAST_API_KEY", default="sk-sandbox-development-key" if SANDBOX_ENABLED else ""
).strip()
ANYFAST_CONNECT_TIMEOUT = env.float("ANYFAST_CONNECT_TIMEOUT", default=10.0)
# Anyfast may hold create calls open well past a minute (docs/upstream.md §7).
ANYFAST_READ_TIMEOUT = env.float("ANYFAST_READ_TIMEOUT", default=30.0)
ANYFAST_CREATE_READ_TIMEOUT = env.float("ANYFAST_CREATE_READ_TIMEOUT", default=300.0)
ANYFAST_READ_RETRIES = env.int("ANYFAST_READ_RETRIES", default=4)
# The H5 link lives 120 s and the BytedToken 30 min per the API reference; one page of the
# upstream docs says 120 s for the token too (docs/upstream.md §12.1, CONFLICT), hence settings.
ANYFAST_H5_LINK_TTL = env.int("ANYFAST_H5_LINK_TTL", default=120)
ANYFAST_TOKEN_TTL = env.int("ANYFAST_TOKEN_TTL", default=30 * 60)
# The account-wide request budgets per action are documented by BytePlus; their table lives in
# upstream/ratelimit.py (DOCUMENTED_BUDGETS). This overrides entries of it, as
# "CreateAsset=120/60,GetAsset=40/1" ("<count>/<seconds>" per action).
ANYFAST_RATE_LIMITS = env.dict("ANYFAST_RATE_LIMITS", default={})
ANYFAST_RATE_LIMIT_ENABLED = env.bool("ANYFAST_RATE_LIMIT_ENABLED", default=True)
# Where the limiter keeps its shared counters: Redis when Redis is the broker, else a file.
ANYFAST_RATE_LIMIT_REDIS_URL = env.str(
    "ANYFAST_RATE_LIMIT_REDIS_URL",
    default=CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "",
)
ANYFAST_RATE_LIMIT_REDIS_PREFIX = env.str(
    "ANYFAST_RATE_LIMIT_REDIS_PREFIX", default="anyfast:ratelimit:"
)
ANYFAST_RATE_LIMIT_FILE = Path(
    env.str("ANYFAST_RATE_LIMIT_FILE", default=str(VAR_DIR / "rate-limit.sqlite3"))
)
# How long a call may wait for its slot before it fails as a transient error, in seconds.
ANYFAST_RATE_LIMIT_MAX_WAIT = env.float("ANYFAST_RATE_LIMIT_MAX_WAIT", default=30.0)

# --- The asset pipeline (assets.services) -----------------------------------------------------
# A worker uploading an asset holds it this long, renewed every third of it while the worker lives
# (portal.leases: the CreateAsset call may take ANYFAST_CREATE_READ_TIMEOUT); once a dead worker's
# lease lapses the sweeper queues the asset again, and the next attempt first looks it up by its
# Name. A killed worker's upload is taken up again within a lease and a sweep.
ASSET_UPLOAD_LEASE_SECONDS = env.int("ASSET_UPLOAD_LEASE_SECONDS", default=30)
# A queued upload still unclaimed this long after it was due lost its task message (the broker was
# down when it was sent): the sweeper sends another. A copy too many does nothing (the claim is a
# conditional UPDATE), but a backlog of uploads should not be re-sent in full every sweep.
ASSET_RESEND_AFTER_SECONDS = env.float("ASSET_RESEND_AFTER_SECONDS", default=120.0)
# Retries of transient failures (429, 5xx, timeouts): exponential backoff with jitter between
# these bounds, for ever: a 429 storm delays an upload but never fails it.
ASSET_RETRY_BASE_SECONDS = env.float("ASSET_RETRY_BASE_SECONDS", default=2.0)
ASSET_RETRY_MAX_SECONDS = env.float("ASSET_RETRY_MAX_SECONDS", default=300.0)
# The first status check of an upload, after the upstream accepted it (processing takes 3 to 12
# s for images, longer for video: docs/upstream.md §6.2); later checks slow down to ASSET_POLL_MAX.
ASSET_POLL_FIRST_SECONDS = env.float("ASSET_POLL_FIRST_SECONDS", default=2.0)
ASSET_POLL_MAX_SECONDS = env.float("ASSET_POLL_MAX_SECONDS", default=60.0)
# An accepted upload that the upstream still does not know after this long failed processing
# (reference G8, G9: do not poll a 404 for minutes).
ASSET_NOT_FOUND_GRACE_SECONDS = env.float("ASSET_NOT_FOUND_GRACE_SECONDS", default=20.0)

# --- Consent review ---------------------------------------------------------------------------
# Four eyes: the user who submitted a consent record for review cannot approve or reject it
# (superusers neither); another reviewer decides.
CONSENT_FOUR_EYES = env.bool("CONSENT_FOUR_EYES", default=True)
# The jurisdiction named in the consent receipt of an electronically signed consent.
CONSENT_RECEIPT_JURISDICTION = env.str("CONSENT_RECEIPT_JURISDICTION", default="")

# --- The person's own page (/me/<token>/, consent.person_pages) --------------------------------
# Each email the person receives carries a personal link to their page; it works this long.
PERSONAL_LINK_TTL_DAYS = env.int("PERSONAL_LINK_TTL_DAYS", default=30)
# Where legal is told that a person withdrew their consent on their page; empty: the active
# members of the "Legal" group who have an email address.
LEGAL_NOTIFICATION_EMAIL = env.str("LEGAL_NOTIFICATION_EMAIL", default="")

# --- Consent ends: warnings, withdrawals, retention -------------------------------------------
# The person and the staff who recorded and reviewed a consent are emailed this many days
# before it ends (once per consent).
CONSENT_EXPIRY_WARNING_DAYS = env.int("CONSENT_EXPIRY_WARNING_DAYS", default=30)
# A worker deleting a withdrawn asset upstream holds it this long, renewed while it lives
# (portal.leases); a dead worker's item is due again once this lapses.
WITHDRAWAL_ITEM_LEASE_SECONDS = env.int("WITHDRAWAL_ITEM_LEASE_SECONDS", default=30)
# An upload whose create lost its answer may still land upstream this long after: a withdrawal
# looks its Name up until then before it records that the asset never reached the upstream.
WITHDRAWAL_CREATE_SETTLE_SECONDS = env.float(
    "WITHDRAWAL_CREATE_SETTLE_SECONDS", default=ANYFAST_CREATE_READ_TIMEOUT
)
# Biometric media (asset files) are destroyed this many days after their consent ended, once
# their withdrawal is confirmed upstream, unless the person is under a legal hold. BIPA allows
# three years after the last interaction at the latest, hence the ceiling.
BIOMETRIC_RETENTION_DAYS = env.int("BIOMETRIC_RETENTION_DAYS", default=30)
if not 0 <= BIOMETRIC_RETENTION_DAYS <= 3 * 365:
    raise ImproperlyConfigured(
        "BIOMETRIC_RETENTION_DAYS must be between 0 and 1095 (BIPA: biometric data is destroyed "
        "three years after the last interaction at the latest)."
    )

# --- Sandbox upstream (only when SANDBOX_ENABLED) ---------------------------------------------
SANDBOX_PROCESSING_SECONDS = env.float("SANDBOX_PROCESSING_SECONDS", default=4.0)
SANDBOX_VIDEO_PROCESSING_SECONDS = env.float("SANDBOX_VIDEO_PROCESSING_SECONDS", default=9.0)
SANDBOX_H5_LINK_TTL = env.int("SANDBOX_H5_LINK_TTL", default=ANYFAST_H5_LINK_TTL)
SANDBOX_TOKEN_TTL = env.int("SANDBOX_TOKEN_TTL", default=ANYFAST_TOKEN_TTL)
SANDBOX_LATENCY_MS = env.int("SANDBOX_LATENCY_MS", default=0)
# A random extra latency of 0 to this many milliseconds per call: the network's variable delay.
SANDBOX_LATENCY_JITTER_MS = env.int("SANDBOX_LATENCY_JITTER_MS", default=0)
# Share of calls (0..1) answered with each fault.
SANDBOX_FAULT_RATE_500 = env.float("SANDBOX_FAULT_RATE_500", default=0.0)
SANDBOX_FAULT_RATE_502 = env.float("SANDBOX_FAULT_RATE_502", default=0.0)
SANDBOX_FAULT_RATE_429 = env.float("SANDBOX_FAULT_RATE_429", default=0.0)
SANDBOX_FAULT_RATE_TIMEOUT = env.float("SANDBOX_FAULT_RATE_TIMEOUT", default=0.0)
SANDBOX_FAULT_RATE_DROP = env.float("SANDBOX_FAULT_RATE_DROP", default=0.0)
# Shares of calls that are handled (the write happens) and then answered 500, or never answered:
# the ambiguous writes of a gateway that lost the upstream's answer.
SANDBOX_FAULT_RATE_500_AFTER = env.float("SANDBOX_FAULT_RATE_500_AFTER", default=0.0)
SANDBOX_FAULT_RATE_DROP_AFTER = env.float("SANDBOX_FAULT_RATE_DROP_AFTER", default=0.0)
# Only these actions get injected faults ("DeleteAsset,CreateAsset"); every action when empty.
SANDBOX_FAULT_ACTIONS = env.list("SANDBOX_FAULT_ACTIONS", default=[])
SANDBOX_TIMEOUT_SECONDS = env.float("SANDBOX_TIMEOUT_SECONDS", default=35.0)
SANDBOX_ENFORCE_RATE_LIMITS = env.bool("SANDBOX_ENFORCE_RATE_LIMITS", default=True)
# The sandbox enforces the documented budgets on its own, not the portal's ANYFAST_RATE_LIMITS
# (raising the client's budget must not raise the stand-in's with it). Overrides per action, as
# "GetAsset=40/1,ListAssets=10/1".
SANDBOX_RATE_LIMITS = env.dict("SANDBOX_RATE_LIMITS", default={})
# One report says GetAsset cannot see LivenessFace assets on Anyfast (docs/upstream.md §4.5):
# on, the sandbox answers NotFound.asset_id there and the client must fall back to ListAssets.
SANDBOX_GETASSET_HIDES_LIVENESS = env.bool("SANDBOX_GETASSET_HIDES_LIVENESS", default=False)

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
# A staff session lasts a working day, not Django's two weeks.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 60 * 60)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SILENCED_SYSTEM_CHECKS: list[str] = []
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    # Both bind more than this portal (every subdomain; browsers' built-in preload list, which
    # takes months to leave), so the studio opts in. check --deploy recommends them (W005,
    # W021): silence exactly the warning of each one not chosen, on purpose.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
    if SECURE_HSTS_PRELOAD and not SECURE_HSTS_INCLUDE_SUBDOMAINS:
        raise ImproperlyConfigured(
            "SECURE_HSTS_PRELOAD=true needs SECURE_HSTS_INCLUDE_SUBDOMAINS=true: the browsers' "
            "preload list accepts only sites that cover their subdomains"
        )
    if not SECURE_HSTS_INCLUDE_SUBDOMAINS:
        SILENCED_SYSTEM_CHECKS.append("security.W005")
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS.append("security.W021")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if len(set(SECRET_KEY)) < 5 or len(SECRET_KEY) < 50 or SECRET_KEY == _DEV_SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 50 characters")

# Every page may load scripts, styles and images from this origin only; an inline <script> or
# <style> needs the request's nonce (request.csp_nonce). The admin uses files only. Responses
# that set their own policy (private files: "sandbox; default-src 'none'") keep it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "img-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# Request bodies (portal.middleware.RequestBodyLimitMiddleware): a signed-in session may send up
# to MAX_REQUEST_BODY_BYTES (the largest asset, a 50 MB video, plus the form around it); anyone
# else (the login form, people's phones) up to MAX_ANONYMOUS_REQUEST_BODY_BYTES.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=64 * 1024 * 1024)
MAX_ANONYMOUS_REQUEST_BODY_BYTES = env.int("MAX_ANONYMOUS_REQUEST_BODY_BYTES", default=1024 * 1024)

# Login throttling (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one user name from
# one address, that pair is refused for AXES_COOLOFF_MINUTES, even with the right password.
# Attempts live in the database (shared by every web process, listed in the admin); unlock
# early with "python manage.py axes_reset_username <name>" (or axes_reset for everyone).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "portal.login_throttle.lockout_response"
AXES_CLIENT_IP_CALLABLE = "portal.client_ip.client_ip"
# Wrong second-factor codes count as failed logins too (portal.two_factor_views), under the
# same limits; the codes typed are not kept with the attempts.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token"]
# How many reverse proxies in front of gunicorn append to X-Forwarded-For (0: none, so the
# client's address is REMOTE_ADDR). Behind one nginx, 1.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# Two-factor sign-in (portal.two_factor): superusers and members of the Legal group give a code
# from an authenticator app (or a one-time recovery code) after their password, and enrol one at
# their first sign-in. django-otp's own back-off is off: django-axes counts wrong codes above.
OTP_TOTP_ISSUER = "Talent Consent Portal"
OTP_TOTP_THROTTLE_FACTOR = 0
OTP_STATIC_THROTTLE_FACTOR = 0
# django-otp's device admin never shows a secret key or a recovery code.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# User names that skip the second step: the demo's users (seed_demo) on a laptop. Honoured only
# with DEBUG=true; refused in production.
TWO_FACTOR_EXEMPT_USERS = [
    name.strip()
    for name in env.list(
        "TWO_FACTOR_EXEMPT_USERS",
        default=["admin", "onboarding", "legal", "producer"] if DEBUG else [],
    )
    if name.strip()
]
if not DEBUG and TWO_FACTOR_EXEMPT_USERS:
    raise ImproperlyConfigured(
        "TWO_FACTOR_EXEMPT_USERS is refused with DEBUG=false: in production every superuser "
        "and every member of Legal signs in with a second factor. Unset TWO_FACTOR_EXEMPT_USERS."
    )

# --- Logging ----------------------------------------------------------------------------------
# A signed file link is a credential while it lasts: its token is masked in every record the
# console handler writes, and in django.request's records (a 404 for an expired link) before any
# handler, such as a mail to the admins, sees them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_file_tokens": {"()": "portal.logredact.MaskFileTokens"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["mask_file_tokens"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes announces itself at every start and logs each sign-in at INFO.
        "axes": {"level": "WARNING"},
        "django.request": {"filters": ["mask_file_tokens"]},
        # runserver's access log, through the masking console instead of Django's own handler.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
