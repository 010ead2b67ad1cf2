"""``manage.py check`` for marketlink: explain a bad configuration before a request meets it."""

from __future__ import annotations

from typing import Any, cast

from django.apps import apps
from django.conf import settings
from django.core import checks

from marketlink import conf, locking, money

# Cache backends whose contents never leave the process (Django's ``…locmem.LocMemCache`` and
# ``…dummy.DummyCache``).
PROCESS_LOCAL_CACHES = {"LocMemCache", "DummyCache"}

REQUIRED_APPS = [
    # Without it nothing owed after a state change (an invoice, a refund) would ever be done.
    "marketlink.outbox",
    "marketlink.accounts",
    "marketlink.vendors",
    "marketlink.catalog",
    "marketlink.orders",
    "marketlink.payments",
    "ninja_jwt.token_blacklist",
]


def register() -> None:
    checks.register(check_settings)
    checks.register(check_atomic_requests)
    checks.register(check_apps)
    checks.register(check_payments)
    checks.register(check_lock_store)
    checks.register(check_currency)
    checks.register(check_transaction_pooling)
    checks.register(check_shared_caches)
    checks.register(check_payouts)


def check_settings(**_: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            problem, hint="See the settings table in marketlink's docs.", id="marketlink.E001"
        )
        for problem in conf.validation_errors()
    ]


def check_atomic_requests(**_: Any) -> list[checks.CheckMessage]:
    return [
        checks.Warning(
            f"DATABASES[{alias!r}]['ATOMIC_REQUESTS'] is on: marketlink's payment views would "
            "then hold a database transaction open across calls to the payment provider.",
            hint="marketlink manages its own transactions; turn ATOMIC_REQUESTS off.",
            id="marketlink.W003",
        )
        for alias, database in settings.DATABASES.items()
        if database.get("ATOMIC_REQUESTS")
    ]


def check_apps(**_: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            f"{app} is not in INSTALLED_APPS.",
            hint="marketlink needs it: add it to INSTALLED_APPS (see the install docs).",
            id="marketlink.E002",
        )
        for app in REQUIRED_APPS
        if not apps.is_installed(app)
    ]


def check_payments(**_: Any) -> list[checks.CheckMessage]:
    if conf.validation_errors():
        return []
    config = conf.get()
    if config.PAYMENT_GATEWAY != "stripe":
        if settings.DEBUG:
            return []
        return [
            checks.Warning(
                "PAYMENT_GATEWAY is 'dummy' on a production (DEBUG=False) site: anyone with a "
                "payment link can mark an order paid with its Pay button.",
                hint="Set PAYMENT_GATEWAY to 'stripe' with its keys before taking real orders.",
                id="marketlink.W002",
            )
        ]
    messages: list[checks.CheckMessage] = []
    key = config.STRIPE_SECRET_KEY
    if not key:
        messages.append(
            checks.Error(
                "PAYMENT_GATEWAY is 'stripe' but STRIPE_SECRET_KEY is empty.",
                hint="Set MARKETLINK['STRIPE_SECRET_KEY'] (sk_test_... or sk_live_...).",
                id="marketlink.E003",
            )
        )
    if not config.STRIPE_WEBHOOK_SECRET:
        messages.append(
            checks.Error(
                "PAYMENT_GATEWAY is 'stripe' but STRIPE_WEBHOOK_SECRET is empty: no payment "
                "could be confirmed.",
                hint="Copy the endpoint's signing secret (whsec_...) from Stripe or stripe listen.",
                id="marketlink.E004",
            )
        )
    messages += _key_mode(key, config.STRIPE_MODE)
    return messages


def _key_mode(key: str, declared: str | None) -> list[checks.CheckMessage]:
    """A key of the other mode than the site declares (``STRIPE_MODE``) is an error. Without a
    declared mode the mode is guessed from DEBUG, so a mismatch is only a warning: a staging
    site (DEBUG off, test key) is not broken."""
    live = key.startswith(("sk_live_", "rk_live_"))
    if not (live or key.startswith(("sk_test_", "rk_test_"))):
        return []  # not a key whose mode its prefix tells; doctor asks Stripe
    key_mode = "live" if live else "test"
    if declared is not None:
        if key_mode == declared:
            return []
        return [
            checks.Error(
                f"STRIPE_SECRET_KEY is a {key_mode} key on a site whose STRIPE_MODE is "
                f"{declared!r}.",
                hint=f"Set the account's {declared} key (sk_{declared}_...), or correct "
                "STRIPE_MODE.",
                id="marketlink.E009",
            )
        ]
    if live != settings.DEBUG:
        return []
    site = "a DEBUG" if settings.DEBUG else "a production (DEBUG=False)"
    return [
        checks.Warning(
            f"STRIPE_SECRET_KEY is a {key_mode} key on {site} site.",
            hint="Use sk_test_ keys while developing and sk_live_ keys in production; a staging "
            "site paid in Stripe's test mode sets MARKETLINK['STRIPE_MODE'] = 'test'.",
            id="marketlink.W001",
        )
    ]


def check_currency(**_: Any) -> list[checks.CheckMessage]:
    """A currency the gateway cannot charge in would fail every payment (or, where Stripe reads
    the amount with other decimals than we assume, charge a wrong amount)."""
    if conf.validation_errors():
        return []
    currency = conf.get().CURRENCY
    if money.is_supported(currency):
        return []
    return [
        checks.Error(
            f"MARKETLINK['CURRENCY'] is {currency.upper()!r}, which Stripe does not charge in.",
            hint="Use one of Stripe's presentment currencies (docs.stripe.com/currencies); "
            "marketlink.money.STRIPE_CURRENCIES lists those marketlink accepts.",
            id="marketlink.E008",
        )
    ]


def check_payouts(**_: Any) -> list[checks.CheckMessage]:
    """Payouts need their app, a fixed fee the currency can carry, and (on Stripe) the Connect
    endpoint's secret: without it no account's changes arrive, and vendors stay gated."""
    if conf.validation_errors():
        return []
    config = conf.get()
    messages: list[checks.CheckMessage] = []
    if money.is_supported(config.CURRENCY) and config.PLATFORM_FEE_FIXED % money.price_step(
        config.CURRENCY
    ):
        step = money.format_amount(money.price_step(config.CURRENCY), config.CURRENCY)
        messages.append(
            checks.Error(
                f"MARKETLINK['PLATFORM_FEE_FIXED'] is not a multiple of {step}, the smallest "
                f"amount {config.CURRENCY.upper()} can be charged or transferred in.",
                hint="Round it to the currency's step (e.g. whole units for JPY).",
                id="marketlink.E010",
            )
        )
    if not config.PAYOUTS_ENABLED:
        return messages
    if not apps.is_installed("marketlink.payouts"):
        messages.append(
            checks.Error(
                "PAYOUTS_ENABLED is on but marketlink.payouts is not in INSTALLED_APPS: no "
                "vendor could be onboarded or paid.",
                hint="Add 'marketlink.payouts' to INSTALLED_APPS and migrate.",
                id="marketlink.E011",
            )
        )
    if config.PAYMENT_GATEWAY == "stripe" and not config.STRIPE_CONNECT_WEBHOOK_SECRET.strip():
        messages.append(
            checks.Error(
                "PAYOUTS_ENABLED is on but STRIPE_CONNECT_WEBHOOK_SECRET is empty: connected "
                "accounts' events (onboarding finished, payouts disabled) would be refused.",
                hint="Add a Connect webhook endpoint at /api/webhooks/connect/ in Stripe and copy "
                "its signing secret (whsec_...).",
                id="marketlink.E012",
            )
        )
    return messages


def check_lock_store(**_: Any) -> list[checks.CheckMessage]:
    if conf.validation_errors():
        return []
    config = conf.get()
    if config.LOCK_CACHE not in settings.CACHES:
        return [
            checks.Error(
                f"MARKETLINK['LOCK_CACHE'] is {config.LOCK_CACHE!r}, which is not in CACHES.",
                id="marketlink.E005",
            )
        ]
    if config.LOCK_BACKEND != "redis":
        return []
    if not locking.cache_is_redis(config.LOCK_CACHE):
        backend = settings.CACHES[config.LOCK_CACHE].get("BACKEND", "")
        return [
            checks.Error(
                f"LOCK_BACKEND is 'redis' but CACHES[{config.LOCK_CACHE!r}] uses {backend}.",
                hint=f"Use {locking.REDIS_CACHE_BACKEND}, or LOCK_BACKEND 'auto'/'database'.",
                id="marketlink.E006",
            )
        ]
    try:
        locking.ping_lock_store()
    except Exception as exc:
        return [
            checks.Error(
                f"Redis for the booking locks is unreachable: {exc}",
                hint="Start Redis or fix the LOCATION of that cache; bookings would fall back "
                "to database locking only.",
                id="marketlink.E007",
            )
        ]
    return []


def check_transaction_pooling(**_: Any) -> list[checks.CheckMessage]:
    """Behind PgBouncer's transaction pooling each transaction may run on another server
    connection, so nothing may outlive one: a server-side cursor (``.iterator()``, declared
    WITH HOLD outside a transaction and fetched from later) or a prepared statement would be
    looked for on a connection that never saw it."""
    if conf.validation_errors() or conf.get().DATABASE_POOLING != "transaction":
        return []
    messages: list[checks.CheckMessage] = []
    for alias, database in settings.DATABASES.items():
        if "postgresql" not in str(database.get("ENGINE", "")):
            continue
        options = cast(dict[str, Any], database.get("OPTIONS") or {})
        problems = []
        if not database.get("DISABLE_SERVER_SIDE_CURSORS"):
            problems.append("DISABLE_SERVER_SIDE_CURSORS is off")
        if options.get("server_side_binding") is True:
            problems.append("OPTIONS['server_side_binding'] is True")
        if options.get("prepare_threshold") is not None:
            problems.append(f"OPTIONS['prepare_threshold'] is {options['prepare_threshold']!r}")
        if problems:
            messages.append(
                checks.Warning(
                    f"DATABASE_POOLING is 'transaction' but DATABASES[{alias!r}] keeps session "
                    f"state a transaction pooler loses: {'; '.join(problems)}.",
                    hint="Set DISABLE_SERVER_SIDE_CURSORS to True, and leave server_side_binding "
                    "and prepare_threshold out of OPTIONS (Django's psycopg 3 default binds on "
                    "the client and prepares nothing); see the deployment docs.",
                    id="marketlink.W004",
                )
            )
    return messages


def check_shared_caches(**_: Any) -> list[checks.CheckMessage]:
    """On several processes or hosts, a throttle counted in a process-local cache counts alone
    in each, and so does the heartbeat; counts read from a Redis replica may be stale. The lock
    is safe either way: on a local cache it is not used (bookings rely on the database's row
    locks), and it always asks the primary."""
    if conf.validation_errors():
        return []
    config = conf.get()
    messages: list[checks.CheckMessage] = []
    uses: dict[str, list[str]] = {}
    for alias, what in (
        (config.THROTTLE_CACHE, "the throttles' counts"),
        (config.HEARTBEAT_CACHE, "the consumers' heartbeats"),
        ("default", "the default cache"),
    ):
        uses.setdefault(alias, []).append(what)
    for alias, held in uses.items():
        backend = str(settings.CACHES.get(alias, {}).get("BACKEND", ""))
        if not settings.DEBUG and backend.rsplit(".", 1)[-1] in PROCESS_LOCAL_CACHES:
            messages.append(
                checks.Warning(
                    f"CACHES[{alias!r}] ({', '.join(held)}) is {backend}: each process keeps "
                    "its own, so with several workers or hosts each throttle counts alone in "
                    "each of them and doctor cannot see the consumers.",
                    hint="Use a cache every process shares (django-redis). A local-memory "
                    "LOCK_CACHE is safe: bookings then rely on the database's locks alone.",
                    id="marketlink.W005",
                )
            )
    for setting in ("THROTTLE_CACHE", "HEARTBEAT_CACHE"):
        alias = getattr(config, setting)
        if locking.cache_reads_replicas(alias):
            messages.append(
                checks.Warning(
                    f"{setting} is {alias!r}, a cache that reads from Redis replicas: a replica "
                    "lagging behind the primary answers stale counts.",
                    hint="Point it at an alias whose LOCATION names the primary only (with "
                    "django-redis's SentinelClient, a list holding the one service URL); see "
                    "the deployment docs.",
                    id="marketlink.W006",
                )
            )
    return messages
