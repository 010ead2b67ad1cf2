"""Settings of the example host site.

It uses marketlink exactly as any Django site would: the apps in ``INSTALLED_APPS``, one
``include("marketlink.urls")`` and a ``MARKETLINK`` dict. Everything comes from the environment;
with nothing set it runs on the embedded default (SQLite, local-memory cache, tasks run inline,
the dummy payment gateway), so ``manage.py runserver`` works on a fresh machine.

Environment: ``DATABASE_URL`` (postgres://user:pass@host:5432/name or sqlite:///path),
``DATABASE_POOLING`` (``transaction``: PostgreSQL is reached through PgBouncer's transaction
pooling), ``REDIS_URL`` (redis://host:6379/0: cache, locks, throttling and the Huey queue),
``REDIS_SENTINELS`` (host:port,host:port: Redis Sentinel decides the primary; ``REDIS_URL`` then
names the monitored service, redis://mymaster/0),
``STRIPE_SECRET_KEY``, ``STRIPE_WEBHOOK_SECRET``, ``STRIPE_API_BASE``,
``STRIPE_CONNECT_WEBHOOK_SECRET``, ``MARKETLINK_PAYOUTS`` (``on``: vendors paid out) and
``MARKETLINK_PLATFORM_FEE_PERCENT``, ``SECRET_KEY``, ``DEBUG``,
``ALLOWED_HOSTS``, ``EMAIL_BACKEND`` (and ``EMAIL_FILE_PATH`` for the file-based one),
``MARKETLINK_LOG_LEVEL``, ``MARKETLINK_LOG_FORMAT`` (``json``: one JSON object per line) and
``MARKETLINK_ABUSE_LIMITS`` (``off``: every throttle and per-customer limit lifted, as a host
does for a load test or a fault rig firing from one address; docs/security.md).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import django

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DEBUG", "1").lower() in {"1", "true", "yes", "on"}
SECRET_KEY = os.environ.get("SECRET_KEY") or "example-only-insecure-key-change-me-0123456789abcdef"
ALLOWED_HOSTS = os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # serves the /api/docs assets itself instead of from a CDN
    "ninja_jwt.token_blacklist",
    "huey.contrib.djhuey",
    "marketlink",
    "marketlink.outbox",
    "marketlink.accounts",
    "marketlink.vendors",
    "marketlink.catalog",
    "marketlink.orders",
    "marketlink.payments",
    "marketlink.payouts",
    "shop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"
AUTH_USER_MODEL = "shop.EmailUser"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]


def database_from_url(url: str) -> dict[str, Any]:
    """A DATABASES entry from a URL, without another dependency for the example."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parts.path[1:]) or ":memory:",
        }
    if parts.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path[1:]),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Persistent connections: a new PostgreSQL connection costs ~7 ms of CPU.
            "CONN_MAX_AGE": 300,
            "CONN_HEALTH_CHECKS": True,
        }
    raise ValueError(f"unsupported DATABASE_URL scheme: {parts.scheme!r}")


DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {
    "default": database_from_url(DATABASE_URL)
    if DATABASE_URL
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
}
if os.environ.get("DATABASE_POOLING") == "transaction":
    # Behind PgBouncer's transaction pooling: no cursor may outlive its transaction (Django's
    # psycopg 3 backend already binds on the client and prepares nothing; marketlink.W004).
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock at BEGIN (no deadlocked read-to-write upgrades under concurrent
    # bookings) and WAL lets readers go on meanwhile.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not Django's shared in-memory database, so the concurrency tests' server threads
    # get SQLite's real locking (busy timeout, WAL) instead of shared-cache table locks.
    DATABASES["default"]["TEST"] = {
        "NAME": str(Path(tempfile.gettempdir()) / f"marketlink_test_{os.getpid()}.sqlite3")
    }

REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_SENTINELS = [
    (host, int(port))
    for host, _, port in (
        item.rpartition(":") for item in os.environ.get("REDIS_SENTINELS", "").split(",")
    )
    if host
]
if REDIS_URL and REDIS_SENTINELS:
    from redis.sentinel import Sentinel

    # Sentinel names the primary; django-redis's SentinelClient reads from a replica when its
    # LOCATION is one URL, so the locks, throttles and heartbeats use "primary", which names
    # the primary alone: a replica lagging behind would answer stale counts.
    _sentinel_kwargs = {"socket_timeout": 1, "socket_connect_timeout": 1}
    _sentinel_options = {
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": REDIS_SENTINELS,
        "SENTINEL_KWARGS": _sentinel_kwargs,
        "SOCKET_CONNECT_TIMEOUT": 1,
        "SOCKET_TIMEOUT": 1,
    }
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": _sentinel_options,
        },
        "primary": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": [REDIS_URL],
            "OPTIONS": _sentinel_options,
        },
    }
    _service = urlsplit(REDIS_URL)
    # Huey's consumer waits up to 1 s on an empty queue: its socket timeout must be longer.
    _huey_redis = Sentinel(
        REDIS_SENTINELS,
        sentinel_kwargs=_sentinel_kwargs,
        password=_service.password,
        socket_connect_timeout=1,
        socket_timeout=5,
    ).master_for(str(_service.hostname), db=int(_service.path.lstrip("/") or 0))
    HUEY = {
        "huey_class": "huey.RedisHuey",
        "name": "marketlink-example",
        "connection_pool": _huey_redis.connection_pool,
        "immediate": False,
    }
elif REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
    HUEY = {
        "huey_class": "huey.RedisHuey",
        "name": "marketlink-example",
        "url": REDIS_URL,
        "immediate": False,
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    HUEY = {"huey_class": "huey.MemoryHuey", "name": "marketlink-example", "immediate": True}

STRIPE_SECRET_KEY = os.environ.get("STRIPE_SECRET_KEY", "")
MARKETLINK: dict[str, Any] = {
    "PAYMENT_GATEWAY": "stripe" if STRIPE_SECRET_KEY else "dummy",
    "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
    "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
    "STRIPE_WEBHOOK_SECRET_PREVIOUS": os.environ.get("STRIPE_WEBHOOK_SECRET_PREVIOUS", ""),
    "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", ""),
    "STRIPE_CONNECT_WEBHOOK_SECRET": os.environ.get("STRIPE_CONNECT_WEBHOOK_SECRET", ""),
    "PAYOUTS_ENABLED": os.environ.get("MARKETLINK_PAYOUTS", "") == "on",
    "PLATFORM_FEE_PERCENT": os.environ.get("MARKETLINK_PLATFORM_FEE_PERCENT", "0"),
}
if os.environ.get("DATABASE_POOLING") == "transaction":
    MARKETLINK["DATABASE_POOLING"] = "transaction"
if "primary" in CACHES:
    MARKETLINK |= {
        "LOCK_CACHE": "primary",
        "THROTTLE_CACHE": "primary",
        "HEARTBEAT_CACHE": "primary",
    }
# Any other MARKETLINK keys, as a JSON object (the test rigs' way to tune the site).
MARKETLINK |= json.loads(os.environ.get("MARKETLINK_JSON", "{}"))
if os.environ.get("MARKETLINK_ABUSE_LIMITS") == "off":
    from marketlink.conf import ABUSE_LIMITS_OFF

    MARKETLINK |= ABUSE_LIMITS_OFF

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
_EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
# The file-based backend's folder (django.core.mail.backends.filebased.EmailBackend).
_EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", "")
if django.VERSION >= (6, 1):
    MAILERS: dict[str, dict[str, Any]] = {"default": {"BACKEND": _EMAIL_BACKEND}}
    if _EMAIL_FILE_PATH:
        MAILERS["default"]["OPTIONS"] = {"file_path": _EMAIL_FILE_PATH}
else:
    EMAIL_BACKEND = _EMAIL_BACKEND
    if _EMAIL_FILE_PATH:
        EMAIL_FILE_PATH = _EMAIL_FILE_PATH
DEFAULT_FROM_EMAIL = "invoices@marketlink.example"

# MARKETLINK_LOG_FORMAT=json: one JSON object per line (marketlink.logs.JsonFormatter).
LOG_FORMAT = os.environ.get("MARKETLINK_LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "marketlink.logs.JsonFormatter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            **({"formatter": "json"} if LOG_FORMAT == "json" else {}),
        }
    },
    "loggers": {
        "marketlink": {
            "handlers": ["console"],
            "level": os.environ.get("MARKETLINK_LOG_LEVEL", "INFO"),
        }
    },
}
