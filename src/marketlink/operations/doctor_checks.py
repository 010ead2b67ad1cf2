"""The infrastructure checks ``marketlink doctor`` runs first, one function each (imported once
Django is set up); the checks of marketlink's data are in ``doctor_data``."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks as system_checks
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from huey.contrib.djhuey import HUEY

from marketlink import conf, heartbeat, locking
from marketlink.operations.findings import Check, Finding

# The periodic expiry job beats every minute: three missed beats is no consumer, not a hiccup.
HEARTBEAT_STALE = timedelta(minutes=3)
_MINUTES = int(HEARTBEAT_STALE.total_seconds() // 60)
# Tasks waiting in the queue beyond this mean the consumers do not keep up (or none runs).
QUEUE_DEPTH_WARN = 500
_CONSUMER_FIX = (
    "Start a Huey consumer with its scheduler (`manage.py run_huey`, without --no-periodic); "
    "see docs/operations.md."
)


def configured_secrets() -> list[str]:
    """Every secret the settings hold, for scrubbing what doctor prints: read from the settings
    as they stand, so an invalid ``MARKETLINK`` hides as much as a valid one."""
    found = [settings.SECRET_KEY, str(getattr(settings, "EMAIL_HOST_PASSWORD", "") or "")]
    found += conf.secret_values()
    found += [str(database.get("PASSWORD") or "") for database in settings.DATABASES.values()]
    locations = [cache.get("LOCATION") for cache in settings.CACHES.values()]
    huey = getattr(settings, "HUEY", None)
    if isinstance(huey, dict):
        locations.append(huey.get("url"))
    for location in locations:
        for url in location if isinstance(location, list | tuple) else [location]:
            if isinstance(url, str) and "://" in url:
                found.append(urlsplit(url).password or "")
    return [secret for secret in dict.fromkeys(found) if len(secret) >= 4]


def check_settings() -> Finding:
    messages = [
        message
        for message in system_checks.run_checks(include_deployment_checks=False)
        if not message.is_silenced() and message.level >= system_checks.WARNING
    ]
    if not messages:
        return Finding("settings", "ok", "Django's system checks (marketlink's included) pass.")
    errors = [m for m in messages if m.level >= system_checks.ERROR]
    detail = "; ".join(f"{m.id}: {m.msg}" for m in messages)
    return Finding(
        "settings",
        "fail" if errors else "warn",
        detail,
        "Fix each message's cause (`marketlink check` shows its hint), then run doctor again.",
    )


def check_database() -> Finding:
    connection = connections[DEFAULT_DB_ALIAS]
    connection.ensure_connection()
    return Finding("database", "ok", f"{connection.vendor} answers.")


def check_migrations() -> Finding:
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not plan:
        return Finding("migrations", "ok", "Every migration is applied.")
    names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan[:5])
    more = f" and {len(plan) - 5} more" if len(plan) > 5 else ""
    return Finding(
        "migrations",
        "fail",
        f"{len(plan)} migration(s) not applied: {names}{more}.",
        "Run `manage.py migrate` (or `django-admin migrate`) with these settings.",
    )


def _huey_uses_redis() -> bool:
    from huey.storage import RedisStorage

    return not HUEY.immediate and isinstance(HUEY.storage, RedisStorage)


def check_redis() -> Finding:
    from django_redis import get_redis_connection

    redis_caches = [alias for alias in settings.CACHES if locking.cache_is_redis(alias)]
    for alias in redis_caches:
        get_redis_connection(alias).ping()
    used = [f"cache {alias!r}" for alias in redis_caches]
    if _huey_uses_redis():
        HUEY.storage.conn.ping()
        used.append("the Huey queue")
    if not used:
        return Finding("redis", "ok", "Not configured: no cache or task queue uses Redis.")
    return Finding("redis", "ok", f"Answers for {', '.join(used)}.")


def _cache_is_shared() -> bool:
    backend = str(settings.CACHES.get(conf.get().HEARTBEAT_CACHE, {}).get("BACKEND", "")).lower()
    return not ("locmem" in backend or "dummy" in backend)


def check_consumer() -> Finding:
    if HUEY.immediate:
        return Finding(
            "consumer",
            "ok",
            "Huey runs tasks inline (immediate mode): there is no consumer to check, and no "
            "periodic job runs (bookings reclaim lapsed reservations themselves).",
        )
    if not _cache_is_shared():
        return Finding(
            "consumer",
            "warn",
            "The heartbeat lives in HEARTBEAT_CACHE, a local-memory cache here: this process "
            "cannot see whether a consumer runs.",
            "Use a shared cache (Redis) for HEARTBEAT_CACHE so doctor can see the consumer.",
        )
    beat = heartbeat.last_beat()
    if beat is None:
        detail = "No heartbeat in the last 24 hours: no consumer runs."
        return Finding("consumer", "fail", detail, _CONSUMER_FIX)
    age = timezone.now() - beat.last
    seconds = int(age.total_seconds())
    if age > HEARTBEAT_STALE:
        return Finding(
            "consumer",
            "fail",
            f"The last heartbeat is {seconds} s old (stale after "
            f"{int(HEARTBEAT_STALE.total_seconds())} s): the consumer or its scheduler stopped.",
            _CONSUMER_FIX,
        )
    return Finding("consumer", "ok", f"The periodic job beat {seconds} s ago ({beat.who}).")


def check_scheduler() -> Finding:
    """Exactly one scheduler: Huey has no election, so a second one (a consumer started without
    ``--no-periodic`` on another host) enqueues every periodic job again, and when the one
    scheduler's host dies no other consumer takes over. Two schedulers beat together when one
    beat after the other's first: a scheduler restarted (a new pid) or moved is not two."""
    if HUEY.immediate:
        return Finding("scheduler", "ok", "Tasks run inline (immediate mode): no scheduler.")
    if not _cache_is_shared():
        return Finding("scheduler", "ok", "Not checked: the heartbeats are not shared here.")
    now = timezone.now()
    recent = [b for b in heartbeat.scheduler_beats() if now - b.last <= HEARTBEAT_STALE]
    together = [
        b for b in recent if any(o != b and o.first <= b.last and b.first <= o.last for o in recent)
    ]
    if len(together) > 1:
        who = ", ".join(f"{b.who} ({int((now - b.last).total_seconds())} s ago)" for b in together)
        return Finding(
            "scheduler",
            "fail",
            f"{len(together)} schedulers beat within {_MINUTES} minutes: {who}; each periodic "
            "job runs once per scheduler.",
            "Keep exactly one consumer with its scheduler: restart the others with "
            "--no-periodic; see docs/deployment.md.",
        )
    if not recent:
        seen = heartbeat.scheduler_beats()
        last = (
            f" The last was {seen[0].who}, at {seen[0].last.isoformat(timespec='seconds')}."
            if seen
            else ""
        )
        return Finding(
            "scheduler",
            "fail",
            f"No scheduler has enqueued the periodic jobs in {_MINUTES} minutes.{last} Huey "
            "elects none by itself.",
            "Start one consumer with its scheduler (`manage.py run_huey` without "
            "--no-periodic) on a live host; see docs/deployment.md.",
        )
    return Finding("scheduler", "ok", f"One scheduler beats: {recent[0].who}.")


def check_task_queue() -> Finding:
    if HUEY.immediate:
        return Finding("task queue", "ok", "Tasks run inline (immediate mode): nothing queues.")
    pending, scheduled = HUEY.pending_count(), HUEY.scheduled_count()
    detail = f"{pending} task(s) waiting, {scheduled} scheduled (retries included)."
    if pending > QUEUE_DEPTH_WARN:
        return Finding(
            "task queue",
            "warn",
            f"{detail} More than {QUEUE_DEPTH_WARN} waiting: the consumers do not keep up.",
            "Start more consumer workers (`run_huey --workers N`) or find what floods the queue.",
        )
    return Finding("task queue", "ok", detail)


def check_stripe_key() -> Finding:
    """The key is valid and of the expected mode: ``STRIPE_MODE``'s when set (another is a
    fail); else live on a production site (DEBUG off) and test while DEBUG is on, where a test
    key with DEBUG off is only a warning (a staging site). The rule the system checks E009 and
    W001 apply to the key's prefix; here the provider itself says which mode the key is (one
    ``GET /v1/balance``)."""
    from marketlink.payments.gateways import get_gateway

    config = conf.get()
    if config.PAYMENT_GATEWAY != "stripe":
        return Finding("stripe key", "ok", "The dummy gateway is in use: no key to check.")
    if not config.STRIPE_SECRET_KEY.strip():
        return Finding(
            "stripe key",
            "fail",
            "PAYMENT_GATEWAY is 'stripe' but STRIPE_SECRET_KEY is empty.",
            "Set MARKETLINK['STRIPE_SECRET_KEY'] to the account's secret key (sk_live_... or "
            "sk_test_...).",
        )
    answer = get_gateway().check_credentials()
    if not answer.ok:
        return Finding(
            "stripe key",
            "fail",
            answer.detail,
            "Set MARKETLINK['STRIPE_SECRET_KEY'] to a valid secret key from the Stripe dashboard.",
        )
    wrong = None if answer.livemode is None else _key_mode(answer.livemode, config.STRIPE_MODE)
    return wrong or Finding("stripe key", "ok", answer.detail)


def _key_mode(livemode: bool, declared: str | None) -> Finding | None:
    """What is wrong with a key of this mode on this site, if anything."""
    mode = "live" if livemode else "test"
    if declared is not None:
        if mode == declared:
            return None
        return Finding(
            "stripe key",
            "fail",
            f"Stripe says the key is a {mode} key, on a site whose STRIPE_MODE is {declared!r}.",
            f"Set the account's {declared} key (sk_{declared}_...), or correct STRIPE_MODE.",
        )
    if livemode != settings.DEBUG:
        return None
    if livemode:
        return Finding(
            "stripe key",
            "fail",
            "Stripe says the key is a live key, on a site with DEBUG on.",
            "Use an sk_test_ key while DEBUG is on, and the live key in production only.",
        )
    return Finding(
        "stripe key",
        "warn",
        "Stripe says the key is a test key, on a site with DEBUG off: no payment here is real.",
        "On a staging site set MARKETLINK['STRIPE_MODE'] = 'test'; in production use an "
        "sk_live_ key.",
    )


def check_webhook_secret() -> Finding:
    config = conf.get()
    if config.PAYMENT_GATEWAY != "stripe":
        return Finding("webhook secret", "ok", "The dummy gateway signs with a key of its own.")
    secret = config.STRIPE_WEBHOOK_SECRET.strip()
    fix = "Set MARKETLINK['STRIPE_WEBHOOK_SECRET'] to the endpoint's signing secret (whsec_...)."
    if not secret:
        detail = "STRIPE_WEBHOOK_SECRET is empty: every delivery is refused."
        return Finding("webhook secret", "fail", detail, fix)
    if not secret.startswith("whsec_"):
        return Finding(
            "webhook secret", "warn", "Set, but it does not look like a signing secret.", fix
        )
    return Finding("webhook secret", "ok", "Set (a whsec_ signing secret).")


def check_connect_webhook_secret() -> Finding:
    config = conf.get()
    name = "connect webhook secret"
    if not config.PAYOUTS_ENABLED:
        return Finding(name, "ok", "Payouts are off: no Connect endpoint is needed.")
    if config.PAYMENT_GATEWAY != "stripe":
        return Finding(name, "ok", "The dummy gateway signs its Connect events itself.")
    secret = config.STRIPE_CONNECT_WEBHOOK_SECRET.strip()
    fix = (
        "Add a Connect endpoint at /api/webhooks/connect/ in Stripe and set "
        "MARKETLINK['STRIPE_CONNECT_WEBHOOK_SECRET'] to its signing secret (whsec_...)."
    )
    if not secret:
        detail = "STRIPE_CONNECT_WEBHOOK_SECRET is empty: no account's change reaches the site."
        return Finding(name, "fail", detail, fix)
    if not secret.startswith("whsec_"):
        return Finding(name, "warn", "Set, but it does not look like a signing secret.", fix)
    if secret == config.STRIPE_WEBHOOK_SECRET.strip():
        detail = "The same as STRIPE_WEBHOOK_SECRET: Stripe signs each endpoint with its own."
        return Finding(name, "warn", detail, fix)
    return Finding(name, "ok", "Set (a whsec_ signing secret).")


CHECKS: list[Check] = [
    check_settings,
    check_database,
    check_migrations,
    check_redis,
    check_consumer,
    check_scheduler,
    check_task_queue,
    check_stripe_key,
    check_webhook_secret,
    check_connect_webhook_secret,
]
