"""``marketlink doctor``: what an operator reads (one item per check, the exit code), against the
real database, Redis and the Stripe stand-in, and that no secret ever reaches its output."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cli_runner import run_console_script
from django.utils import timezone
from order_helpers import new_order
from stripe_shop import stripe_settings
from typer.testing import CliRunner

from marketlink import heartbeat
from marketlink.catalog.models import ServiceVariant
from marketlink.cli import app
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.transitions import order_transition
from marketlink.outbox.models import OutboxEntry
from marketlink.payments.models import PaymentEvent
from marketlink.testing.stripe_server import StripeStandIn

runner = CliRunner()
API_KEY = "sk_test_doctor_0123456789abcdefSECRET"
WEBHOOK_SECRET = "whsec_doctor_0123456789SECRET"
SECRET_KEY = "doctor-test-secret-key-0123456789-abcdefghijklmnop"


def doctor(*args: str) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    """Exit code, the JSON document, and its items by check name."""
    result = runner.invoke(app, ["doctor", "--json", *args], catch_exceptions=False)
    document = json.loads(result.stdout)
    return result.exit_code, document, {item["check"]: item for item in document["items"]}


LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture
def development_site(settings: Any, tasks_run_inline: None) -> None:
    """The embedded default, whatever the environment configured: DEBUG on (W002 otherwise),
    the local-memory cache and tasks run inline."""
    settings.DEBUG = True
    settings.CACHES = LOCAL_CACHE


@pytest.fixture
def standin(settings: Any, development_site: None) -> Iterator[StripeStandIn]:
    with StripeStandIn(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET) as standin:
        settings.MARKETLINK = stripe_settings(standin)
        settings.SECRET_KEY = SECRET_KEY
        yield standin


@pytest.mark.django_db
def test_a_healthy_embedded_site_is_all_ok_and_prints_a_table(development_site):
    code, document, items = doctor()
    assert code == 0
    assert {item["status"] for item in items.values()} == {"ok"}
    assert list(items) == [
        "settings",
        "database",
        "migrations",
        "redis",
        "consumer",
        "scheduler",
        "task queue",
        "stripe key",
        "webhook secret",
        "connect webhook secret",
        "reservations",
        "invoices",
        "outbox",
        "events",
        "refunds and disputes",
        "stock",
        "payouts",
    ]
    assert document["summary"]["ok"] == len(items)
    table = runner.invoke(app, ["doctor"], catch_exceptions=False)
    assert table.exit_code == 0
    assert "Summary:" in table.stdout
    assert "| stock " in table.stdout


@pytest.mark.django_db
def test_stuck_orders_flagged_events_and_lost_units_need_a_person(development_site):
    lapsed = new_order()
    RepairOrder.objects.filter(pk=lapsed.pk).update(
        expires_at=timezone.now() - timedelta(minutes=10)
    )
    unsent = new_order()
    order_transition(
        order_id=unsent.pk,
        to=OrderStatus.PAID,
        source=ChangeSource.CLI,
        paid_at=timezone.now() - timedelta(hours=1),
    )
    # Its invoice owed for an hour, and no drainer ran it: no consumer.
    OutboxEntry.objects.filter(subject_id=str(unsent.pk)).update(
        due_at=timezone.now() - timedelta(hours=1)
    )
    PaymentEvent.objects.create(
        event_id="evt_flagged", gateway="dummy", event_type="charge.refunded", payload={},
        status="failed", needs_attention=True,
    )  # fmt: skip
    invented = new_order().variant_id
    ServiceVariant.objects.filter(pk=invented).update(stock=99)

    code, document, items = doctor()
    assert code == 1
    assert items["reservations"]["status"] == "warn"
    assert str(lapsed.pk) in items["reservations"]["detail"]
    assert items["invoices"]["status"] == "fail"
    assert str(unsent.pk) in items["invoices"]["detail"]
    assert items["outbox"]["status"] == "fail"
    assert f"invoice:{unsent.pk}" in items["outbox"]["detail"]
    assert items["events"]["status"] == "warn"
    assert "evt_flagged" in items["events"]["detail"]
    assert items["stock"]["status"] == "fail"
    assert str(invented) in items["stock"]["detail"]
    for name in ("reservations", "invoices", "outbox", "events", "stock"):
        assert items[name]["fix"], f"{name} has no fix"
    assert (document["summary"]["warn"], document["summary"]["fail"]) == (2, 3)


@pytest.mark.django_db
def test_the_stripe_key_is_checked_at_the_stand_in_for_validity_and_mode(standin, settings):
    # A development site (DEBUG on) expects a test key.
    code, _, items = doctor()
    assert items["stripe key"] == {
        "check": "stripe key",
        "status": "ok",
        "detail": "Stripe accepts the test key.",
        "fix": None,
    }
    assert items["webhook secret"]["status"] == "ok"
    assert code == 0
    assert ("GET", "/v1/balance") in [(r.method, r.path) for r in standin.requests_log]
    # A test key with DEBUG off, and STRIPE_MODE: below.


@pytest.mark.django_db
def test_a_refused_key_fails_and_a_provider_down_is_unreachable(standin, settings):
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_SECRET_KEY": API_KEY + "x"}
    code, _, items = doctor()
    assert (code, items["stripe key"]["status"]) == (1, "fail")
    assert "refused" in items["stripe key"]["detail"]

    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_SECRET_KEY": API_KEY}
    standin.stop()
    code, document, items = doctor()
    assert (code, items["stripe key"]["status"]) == (3, "unreachable")
    assert document["summary"]["exit_code"] == 3
    assert items["stripe key"]["fix"]


@pytest.mark.django_db
def test_no_secret_is_ever_printed(standin, settings):
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_SECRET_KEY": API_KEY + "x"}
    refused = runner.invoke(app, ["doctor"], catch_exceptions=False)
    refused_json = runner.invoke(app, ["doctor", "--json"], catch_exceptions=False)
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_WEBHOOK_SECRET": "not-a-whsec-SECRET"}
    standin.stop()
    down = runner.invoke(app, ["doctor", "--json"], catch_exceptions=False)
    output = "".join(r.stdout + r.stderr for r in (refused, refused_json, down))
    assert "refused" in output
    for secret in (API_KEY, WEBHOOK_SECRET, SECRET_KEY, "not-a-whsec-SECRET"):
        assert secret not in output
        assert secret[-8:] not in output  # not even the tail Stripe's messages quote


@pytest.mark.django_db
def test_without_a_shared_cache_the_consumer_cannot_be_seen(settings, tasks_queued):
    settings.CACHES = LOCAL_CACHE
    _, _, items = doctor()
    assert items["consumer"]["status"] == "warn"
    assert "cannot see" in items["consumer"]["detail"]


@pytest.mark.redis
@pytest.mark.django_db
def test_the_consumer_is_seen_through_its_heartbeat_in_redis(settings, tasks_queued):
    settings.CACHES = {
        "default": {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": os.environ["REDIS_URL"]}
    }
    _, _, items = doctor()
    assert items["consumer"]["status"] == "fail"  # no beat at all
    assert items["redis"]["status"] == "ok"
    heartbeat.beat()  # what the periodic expiry job does every minute
    _, _, items = doctor()
    assert items["consumer"]["status"] == "ok"
    assert items["task queue"]["status"] == "ok"

    from django.core.cache import cache

    stale = timezone.now() - timedelta(minutes=4)
    cache.set("marketlink:heartbeat", {"at": stale, "host": "web-1", "pid": 1})
    code, _, items = doctor()
    assert (code, items["consumer"]["status"]) == (1, "fail")
    assert "stale" in items["consumer"]["detail"]


def test_the_console_script_says_the_database_is_unreachable_and_exits_3():
    result = run_console_script(
        "doctor", "--json", database_url="postgres://postgres:pw-SECRET@127.0.0.1:9/none"
    )
    assert result.returncode == 3, result.stderr
    items = {item["check"]: item for item in json.loads(result.stdout)["items"]}
    assert items["database"]["status"] == "unreachable"
    assert items["stock"]["detail"] == "not checked: the database check is unreachable"
    assert "pw-SECRET" not in result.stdout + result.stderr


# --- Secrets: never a settings value, the scrub on whole words only ----------------------------

MISTYPED_SECRET = "whsec_mistyped_0123456789SECRET"


@pytest.mark.django_db
def test_a_mistyped_secret_key_is_named_but_its_value_never_printed(standin, settings):
    # One letter short of STRIPE_WEBHOOK_SECRET_PREVIOUS: an unknown key, refused by validation.
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_WEBHOOK_SECRET_PREV": MISTYPED_SECRET}
    text = runner.invoke(app, ["doctor"], catch_exceptions=False)
    as_json = runner.invoke(app, ["doctor", "--json"], catch_exceptions=False)
    check = runner.invoke(app, ["check"], catch_exceptions=False)
    assert (text.exit_code, as_json.exit_code, check.exit_code) == (1, 1, 2)
    output = "".join(r.stdout + r.stderr for r in (text, as_json, check))
    assert "STRIPE_WEBHOOK_SECRET_PREV" in output  # the operator learns which key is wrong
    for secret in (MISTYPED_SECRET, API_KEY, WEBHOOK_SECRET):
        assert secret not in output
        assert secret[-8:] not in output
    items = {item["check"]: item for item in json.loads(as_json.stdout)["items"]}
    assert items["settings"]["status"] == "fail"
    # The checks that read MARKETLINK say so, and point at the settings, not at a bug.
    assert items["stripe key"]["status"] == "fail"
    assert "MARKETLINK" in items["stripe key"]["detail"]
    assert "maintainers" not in items["stripe key"]["fix"]


@pytest.mark.django_db
def test_every_secret_is_scrubbed_even_when_the_settings_are_invalid(standin, settings):
    from marketlink.operations.doctor_checks import configured_secrets

    settings.MARKETLINK = {
        **settings.MARKETLINK,
        "STRIPE_WEBHOOK_SECRET_PREVIOUS": "whsec_previous_0123456789SECRET",
        "STRIPE_WEBHOOK_SECRET_PREV": MISTYPED_SECRET,
        "PAGE_SIZE": 0,
    }
    assert {
        API_KEY,
        WEBHOOK_SECRET,
        "whsec_previous_0123456789SECRET",
        MISTYPED_SECRET,
        SECRET_KEY,
    } <= set(configured_secrets())


@pytest.mark.django_db
def test_a_password_that_is_part_of_a_word_leaves_the_word_whole(development_site, monkeypatch):
    from django.db import connection

    # A database password that is part of a word doctor prints ("postgres" in "postgresql").
    monkeypatch.setitem(connection.settings_dict, "PASSWORD", connection.vendor[:-2])
    _, _, items = doctor()
    assert items["database"]["detail"] == f"{connection.vendor} answers."


# --- STRIPE_MODE: staging sites, and keys of the other mode ------------------------------------


@pytest.mark.django_db
def test_a_staging_site_with_a_test_key_is_a_warning_and_exits_0(standin, settings):
    settings.DEBUG = False  # staging: production-like, paid with Stripe's test mode
    code, document, items = doctor()
    assert items["stripe key"]["status"] == "warn"
    assert "STRIPE_MODE" in items["stripe key"]["fix"]
    assert items["settings"]["status"] == "warn"  # the system check's W001
    assert code == 0
    assert document["summary"]["fail"] == 0
    assert any("warning" in note for note in document["summary"]["notes"])
    table = runner.invoke(app, ["doctor"], catch_exceptions=False)
    assert table.exit_code == 0
    assert "warning" in table.stdout


@pytest.mark.django_db
def test_a_staging_site_that_declares_test_mode_is_all_ok(standin, settings):
    settings.DEBUG = False
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_MODE": "test"}
    code, _, items = doctor()
    assert (code, items["stripe key"]["status"]) == (0, "ok")
    # The site's settings raise nothing about its key (its local-memory cache is W005's).
    assert "W001" not in items["settings"]["detail"]
    assert "E009" not in items["settings"]["detail"]


@pytest.mark.django_db
def test_a_test_key_on_a_live_mode_site_fails(standin, settings):
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_MODE": "live"}
    code, _, items = doctor()
    assert code == 1
    assert items["stripe key"]["status"] == "fail"
    assert "test key" in items["stripe key"]["detail"]
    assert items["settings"]["status"] == "fail"
    assert "marketlink.E009" in items["settings"]["detail"]
