"""The portal's only settings module.

Everything comes from the environment (or an optional ``.env`` beside ``manage.py``). With no
environment at all the portal runs on embedded defaults meant for a laptop: SQLite, private files
under ``var/``, Celery on kombu's ``filesystem://`` broker, email to the console and the built-in
sandbox upstream. Production sets ``DEBUG=false`` and the variables listed in ``.env.example``;
it refuses to start when one of its secrets is missing.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)
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
)

if not DEBUG:
    missing = [name for name in PRODUCTION_REQUIRED if not env.str(name, default="")]
    if not env.bool("SANDBOX_ENABLED", default=False) and not env.str(
        "ANYFAST_API_KEY", default=""
    ):
        missing.append("ANYFAST_API_KEY")
    if missing:
        raise ImproperlyConfigured(
            "DEBUG=false needs these environment variables: " + ", ".join(missing)
        )

SECRET_KEY = env.str("SECRET_KEY", default=_DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
PORTAL_PUBLIC_URL = env.str("PORTAL_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[PORTAL_PUBLIC_URL])

# --- Applications -----------------------------------------------------------------------------
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "consent",
    "assets",
    "audit",
]
if SANDBOX_ENABLED:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
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

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
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
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 10 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 9 * 60
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Beat's DatabaseScheduler copies these into its tables at start, where the admin can edit them.
HEARTBEAT_INTERVAL_SECONDS = 60
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "portal.tasks.record_heartbeat",
        "schedule": float(HEARTBEAT_INTERVAL_SECONDS),
    },
}
# Tasks outside the installed apps, which autodiscovery does not see.
CELERY_IMPORTS = ("portal.tasks",)
CELERY_TIMEZONE = TIME_ZONE

# --- The upstream (Anyfast /volc/asset/*) -----------------------------------------------------
# In development the client talks to the sandbox app mounted at /sandbox on this same server.
ANYFAST_BASE_URL = env.str(
    "ANYFAST_BASE_URL",
    default=f"{PORTAL_PUBLIC_URL}/sandbox" if SANDBOX_ENABLED else "https://www.anyfast.ai",
).rstrip("/")
ANYFAST_API_KEY = env.str("ANYFAST_API_KEY", default="sk-sandbox-development-key")
ANYFAST_CONNECT_TIMEOUT = env.float("ANYFAST_CONNECT_TIMEOUT", default=10.0)
# Anyfast may hold create calls open well past a minute (docs/upstream.md §7).
ANYFAST_READ_TIMEOUT = env.float("ANYFAST_READ_TIMEOUT", default=30.0)
ANYFAST_CREATE_READ_TIMEOUT = env.float("ANYFAST_CREATE_READ_TIMEOUT", default=300.0)
ANYFAST_READ_RETRIES = env.int("ANYFAST_READ_RETRIES", default=4)
# The H5 link lives 120 s and the BytedToken 30 min per the API reference; one page of the
# upstream docs says 120 s for the token too (docs/upstream.md §12.1, CONFLICT), hence settings.
ANYFAST_H5_LINK_TTL = env.int("ANYFAST_H5_LINK_TTL", default=120)
ANYFAST_TOKEN_TTL = env.int("ANYFAST_TOKEN_TTL", default=30 * 60)
# Account-wide request budgets per action, documented by BytePlus (docs/upstream.md §8), as
# "<count>/<seconds>". The limiter keeps every worker process together within them.
DOCUMENTED_RATE_LIMITS = {
    "CreateVisualValidateSession": "3/1",
    "GetVisualValidateResult": "3/1",
    "CreateAsset": "300/60",
    "GetAsset": "100/1",
    "ListAssets": "10/1",
    "UpdateAsset": "10/1",
    "DeleteAsset": "10/1",
    "DeleteAssetGroup": "5/1",
    "ListAssetGroups": "10/1",
}
_RATE_LIMIT_VARIABLES = {
    "CreateVisualValidateSession": "ANYFAST_RATE_CREATE_SESSION",
    "GetVisualValidateResult": "ANYFAST_RATE_GET_RESULT",
    "CreateAsset": "ANYFAST_RATE_CREATE_ASSET",
    "GetAsset": "ANYFAST_RATE_GET_ASSET",
    "ListAssets": "ANYFAST_RATE_LIST_ASSETS",
    "UpdateAsset": "ANYFAST_RATE_UPDATE_ASSET",
    "DeleteAsset": "ANYFAST_RATE_DELETE_ASSET",
    "DeleteAssetGroup": "ANYFAST_RATE_DELETE_GROUP",
    "ListAssetGroups": "ANYFAST_RATE_LIST_GROUPS",
}
ANYFAST_RATE_LIMITS = {
    action: env.str(_RATE_LIMIT_VARIABLES[action], default=budget)
    for action, budget in DOCUMENTED_RATE_LIMITS.items()
}
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

# --- Sandbox upstream (only when SANDBOX_ENABLED) ---------------------------------------------
SANDBOX_PROCESSING_SECONDS = env.float("SANDBOX_PROCESSING_SECONDS", default=4.0)
SANDBOX_VIDEO_PROCESSING_SECONDS = env.float("SANDBOX_VIDEO_PROCESSING_SECONDS", default=9.0)
SANDBOX_H5_LINK_TTL = env.int("SANDBOX_H5_LINK_TTL", default=ANYFAST_H5_LINK_TTL)
SANDBOX_TOKEN_TTL = env.int("SANDBOX_TOKEN_TTL", default=ANYFAST_TOKEN_TTL)
SANDBOX_LATENCY_MS = env.int("SANDBOX_LATENCY_MS", default=0)
# Share of calls (0..1) answered with each fault.
SANDBOX_FAULT_RATE_500 = env.float("SANDBOX_FAULT_RATE_500", default=0.0)
SANDBOX_FAULT_RATE_502 = env.float("SANDBOX_FAULT_RATE_502", default=0.0)
SANDBOX_FAULT_RATE_429 = env.float("SANDBOX_FAULT_RATE_429", default=0.0)
SANDBOX_FAULT_RATE_TIMEOUT = env.float("SANDBOX_FAULT_RATE_TIMEOUT", default=0.0)
SANDBOX_FAULT_RATE_DROP = env.float("SANDBOX_FAULT_RATE_DROP", default=0.0)
SANDBOX_TIMEOUT_SECONDS = env.float("SANDBOX_TIMEOUT_SECONDS", default=35.0)
SANDBOX_ENFORCE_RATE_LIMITS = env.bool("SANDBOX_ENFORCE_RATE_LIMITS", default=True)
# The sandbox enforces the documented budgets on its own, not the portal's ANYFAST_RATE_*
# (raising the client's budget must not raise the stand-in's with it). Override per action as
# "GetAsset=40/1,ListAssets=10/1".
SANDBOX_RATE_LIMITS = {
    **DOCUMENTED_RATE_LIMITS,
    **env.dict("SANDBOX_RATE_LIMITS", default={}),
}
# One report says GetAsset cannot see LivenessFace assets on Anyfast (docs/upstream.md §4.5): on,
# the sandbox answers NotFound.asset_id there and the client must fall back to ListAssets.
SANDBOX_GETASSET_HIDES_LIVENESS = env.bool("SANDBOX_GETASSET_HIDES_LIVENESS", default=False)

# --- Security ---------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    if len(set(SECRET_KEY)) < 5 or len(SECRET_KEY) < 50 or SECRET_KEY == _DEV_SECRET_KEY:
        raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 50 characters")

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
