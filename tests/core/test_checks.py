from __future__ import annotations

import pytest
from django.core import checks

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _a_development_site(settings):
    settings.DEBUG = True  # pytest-django runs with DEBUG=False, a production site for checks


def ids() -> set[str]:
    return {message.id for message in checks.run_checks() if message.id.startswith("marketlink")}


def test_clean_configuration_has_no_findings():
    assert ids() == set()


def test_bad_settings_are_reported(settings):
    settings.MARKETLINK = {"PAGE_SIZE": 0, "NOT_A_SETTING": 1}
    messages = [m for m in checks.run_checks() if m.id == "marketlink.E001"]
    assert len(messages) == 2
    assert any("NOT_A_SETTING" in m.msg for m in messages)


def test_reservation_longer_than_stripe_allows_is_refused(settings):
    settings.MARKETLINK = {"RESERVATION_TTL": 2 * 24 * 3600}
    assert "marketlink.E001" in ids()


def test_stripe_without_keys(settings):
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "stripe"}
    assert {"marketlink.E003", "marketlink.E004"} <= ids()


@pytest.mark.parametrize(
    ("key", "debug", "warned"),
    [("sk_live_x", True, True), ("sk_test_x", False, True), ("sk_test_x", True, False)],
)
def test_stripe_key_mode(settings, key, debug, warned):
    settings.DEBUG = debug
    settings.MARKETLINK = {
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": key,
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    assert ("marketlink.W001" in ids()) is warned


def test_dummy_gateway_in_production_is_warned(settings):
    settings.DEBUG = False
    assert "marketlink.W002" in ids()


def test_missing_app(settings):
    settings.INSTALLED_APPS = [
        a for a in settings.INSTALLED_APPS if a != "ninja_jwt.token_blacklist"
    ]
    assert "marketlink.E002" in ids()


def test_lock_cache_must_exist_and_redis_must_answer(settings):
    settings.MARKETLINK = {"LOCK_CACHE": "nope"}
    assert "marketlink.E005" in ids()
    settings.MARKETLINK = {"LOCK_BACKEND": "redis"}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert "marketlink.E006" in ids()
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2},
        }
    }
    assert "marketlink.E007" in ids()


def test_atomic_requests_is_warned(settings, monkeypatch):
    # In place: overriding DATABASES as a whole is not supported by Django's test tools.
    monkeypatch.setitem(settings.DATABASES["default"], "ATOMIC_REQUESTS", True)
    assert "marketlink.W003" in ids()


@pytest.mark.parametrize("currency", ["xyz", "xau", "hrk"])
def test_a_currency_stripe_does_not_charge_in_is_an_error(settings, currency):
    settings.MARKETLINK = {"CURRENCY": currency}
    [message] = [m for m in checks.run_checks() if m.id == "marketlink.E008"]
    assert currency.upper() in message.msg


@pytest.mark.parametrize("currency", ["usd", "EUR", "jpy", "kwd", "tnd", "isk", "huf", "ugx"])
def test_currencies_stripe_charges_in_are_accepted(settings, currency):
    settings.MARKETLINK = {"CURRENCY": currency}
    assert ids() == set()


def test_a_currency_that_is_not_three_letters_is_a_bad_setting(settings):
    settings.MARKETLINK = {"CURRENCY": "u$d"}
    assert "marketlink.E001" in ids()


def test_a_bad_setting_is_reported_without_its_value(settings):
    settings.MARKETLINK = {
        "STRIPE_WEBHOOK_SECRET_PREV": "whsec_mistyped_SECRET",
        "LOGIN_THROTTLE": "sk_live_in_the_wrong_place_SECRET",
        "PERIODIC_RECONCILE_MINUTES": 7,
    }
    messages = [m for m in checks.run_checks() if m.id == "marketlink.E001"]
    assert len(messages) == 3
    text = " ".join(f"{m.msg} {m.hint}" for m in messages)
    assert "STRIPE_WEBHOOK_SECRET_PREV" in text
    assert "LOGIN_THROTTLE" in text
    assert "SECRET" not in text.replace("STRIPE_WEBHOOK_SECRET_PREV", "")
    assert "7" not in text  # nor a number


@pytest.mark.parametrize(
    ("mode", "key", "debug", "expected"),
    [
        ("live", "sk_test_x", False, "marketlink.E009"),
        ("live", "rk_test_x", True, "marketlink.E009"),
        ("test", "sk_live_x", True, "marketlink.E009"),
        ("test", "rk_live_x", False, "marketlink.E009"),
        ("test", "sk_test_x", False, None),  # a staging site that says so
        ("live", "sk_live_x", False, None),
        ("live", "rk_live_x", False, None),
    ],
)
def test_a_key_of_the_other_mode_than_stripe_mode_is_an_error(settings, mode, key, debug, expected):
    settings.DEBUG = debug
    settings.MARKETLINK = {
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_MODE": mode,
        "STRIPE_SECRET_KEY": key,
        "STRIPE_WEBHOOK_SECRET": "whsec_x",
    }
    # With DEBUG off the example's local-memory cache is its own warning (W005), not this one.
    assert ids() - {"marketlink.W005"} == ({expected} if expected else set())


POOLED = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "HOST": "pgbouncer"}


@pytest.mark.parametrize(
    ("database", "warned"),
    [
        ({**POOLED, "DISABLE_SERVER_SIDE_CURSORS": True}, False),
        ({**POOLED, "DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": {"pool": True}}, False),
        (POOLED, True),  # .iterator() would declare a cursor another server connection lacks
        (
            {**POOLED, "DISABLE_SERVER_SIDE_CURSORS": True, "OPTIONS": {"prepare_threshold": 5}},
            True,
        ),
        (
            {
                **POOLED,
                "DISABLE_SERVER_SIDE_CURSORS": True,
                "OPTIONS": {"server_side_binding": True},
            },
            True,
        ),
    ],
)
def test_transaction_pooling_needs_no_session_state(settings, monkeypatch, database, warned):
    # A database alias of its own, added in place (Django's test tools cannot swap DATABASES).
    monkeypatch.setitem(settings.DATABASES, "pooled", database)

    def warned_about_it() -> bool:  # the test database may be PostgreSQL too
        return any(m.id == "marketlink.W004" and "'pooled'" in m.msg for m in checks.run_checks())

    settings.MARKETLINK = {"DATABASE_POOLING": "transaction"}
    assert warned_about_it() is warned
    settings.MARKETLINK = {"DATABASE_POOLING": "session"}
    assert not warned_about_it()


LOCAL = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
REDIS = {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}


@pytest.mark.parametrize(
    ("caches", "marketlink", "debug", "warned"),
    [
        ({"default": LOCAL}, {}, False, 1),  # the default cache, the throttles' too
        ({"default": LOCAL}, {}, True, 0),  # a developer's machine: one process
        ({"default": REDIS, "local": LOCAL}, {"THROTTLE_CACHE": "local"}, False, 1),
        ({"default": REDIS, "local": LOCAL}, {"LOCK_CACHE": "local"}, False, 0),  # lock: safe
        ({"default": REDIS}, {}, False, 0),
    ],
)
def test_process_local_caches_in_production_are_warned(settings, caches, marketlink, debug, warned):
    settings.CACHES, settings.MARKETLINK, settings.DEBUG = caches, marketlink, debug
    found = [m for m in checks.run_checks() if m.id == "marketlink.W005"]
    assert len(found) == warned, found


SENTINEL = {
    "BACKEND": "django_redis.cache.RedisCache",
    "OPTIONS": {
        "CLIENT_CLASS": "django_redis.client.SentinelClient",
        "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
        "SENTINELS": [("127.0.0.1", 1)],
    },
}


@pytest.mark.parametrize(
    ("location", "warned"),
    [
        ("redis://mymaster/0", True),  # SentinelClient adds a replica pool for reads
        (["redis://mymaster/0"], False),  # the primary only
        (["redis://mymaster/0", "redis://mymaster/0?is_master=0"], True),
    ],
)
def test_counts_read_from_a_replica_are_warned(settings, location, warned):
    settings.CACHES = {"default": REDIS, "primary": {**SENTINEL, "LOCATION": location}}
    settings.MARKETLINK = {"THROTTLE_CACHE": "primary", "HEARTBEAT_CACHE": "primary"}
    found = [m for m in checks.run_checks() if m.id == "marketlink.W006"]
    assert len(found) == (2 if warned else 0), found
