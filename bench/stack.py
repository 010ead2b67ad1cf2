"""The bench's stack in the runner's process: its constants, its database and Redis reset, the
Stripe stand-in, Django set up on ``bench.settings``, and the data the scenarios run on, made
through the ORM and marketlink's services (``run.py`` and the profiles share them)."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent

# A database and Redis db of the bench's own: the test suites others run use other names.
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/ml_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
HOST = "127.0.0.1"
CUSTOMERS = 200  # the hot storm's buyers: each of its requests comes from another customer
SPREAD_VARIANTS = 50
SPREAD_STOCK = 1_000_000  # never runs out: every 409 in this scenario is a wrong refusal
HOT_STOCK = 50  # units of the hot variant, sold to CUSTOMERS buyers
# Seconds between the client's connection starts: a burst of 32 connects tends to be accepted by
# one gunicorn worker (32/0), which then serves everything under one GIL at half the rate.
CONNECT_STAGGER_S = 0.002
# The Stripe stand-in the site talks to (STRIPE_API_BASE) and the secrets both sides share.
STANDIN_API_KEY = "sk_test_marketlink_bench"
STANDIN_WEBHOOK_SECRET = "whsec_marketlink_bench"
SLOW_STRIPE_S = 0.3  # --slow-stripe: the stand-in's latency in the slow phases
WEBHOOK_COPIES = 2  # every event is delivered twice: half the pairs together, half in turn
WEBHOOK_ORDERS = 100
WEBHOOK_VARIANTS = 50
# The event each webhook scenario delivers, by scenario name.
WEBHOOK_KINDS = {
    "webhook pi": "payment_intent.succeeded",
    "webhook cs": "checkout.session.completed",
}
INVOICE_WAIT_S = 60.0  # how long the Huey consumer may take to send a scenario's invoices


def reset_stores(database_url: str, redis_url: str) -> None:
    """Drop and recreate the bench database, empty the bench Redis db."""
    import psycopg
    import redis

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if "bench" not in name:
        raise SystemExit(f"refusing to drop {name!r}: the bench database's name must say 'bench'")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(redis_url).flushdb()


def start_standin() -> Any:
    """The Stripe stand-in, in this process, and the environment ``bench/settings.py`` reads to
    point the site's Stripe gateway at it (set before Django starts here and in gunicorn)."""
    from marketlink.testing.stripe_server import StripeStandIn

    standin = StripeStandIn(
        api_key=STANDIN_API_KEY, webhook_secret=STANDIN_WEBHOOK_SECRET, auto_deliver=False
    ).start()
    os.environ.update(
        BENCH_GATEWAY="stripe",
        BENCH_STRIPE_API_BASE=standin.api_base,
        BENCH_STRIPE_SECRET_KEY=STANDIN_API_KEY,
        BENCH_STRIPE_WEBHOOK_SECRET=STANDIN_WEBHOOK_SECRET,
    )
    return standin


def django_setup(database_url: str, redis_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["REDIS_URL"] = redis_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ.setdefault("DEBUG", "0")
    import django

    django.setup()


def migrate_and_seed() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from marketlink.accounts.models import Account, Role
    from marketlink.accounts.services import tokens_issue
    from marketlink.vendors.services import vendor_profile_create

    call_command("migrate", verbosity=0, interactive=False)
    user_model = get_user_model()
    # Users with unusable passwords straight through the ORM: hashing 51 real passwords would
    # take longer than the quick run; the bearer tokens are all the storm needs.
    vendor_user = user_model._default_manager.create_user("vendor@bench.example", None)
    Account.objects.create(user=vendor_user, role=Role.VENDOR, email="vendor@bench.example")
    vendor = vendor_profile_create(user=vendor_user, business_name="Bench Garage")
    tokens, customers = [], []
    for number in range(CUSTOMERS):
        email = f"customer{number}@bench.example"
        user = user_model._default_manager.create_user(email, None)
        Account.objects.create(user=user, role=Role.CUSTOMER, email=email)
        tokens.append(tokens_issue(user=user)["access"])
        customers.append(user)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"vendor": vendor, "tokens": tokens, "customers": customers}


def paid_checkouts(
    standin: Any, vendor: Any, customers: list[Any], label: str, count: int, base_url: str
) -> tuple[list[Any], list[dict[str, Any]]]:
    """``count`` pending orders, each paid at the Stripe stand-in: placed with ``order_place``,
    their payment link opened with ``checkout_open`` (the site's Stripe gateway creates the
    Checkout Session at the stand-in, as when a customer opens the link), then paid with
    ``standin.pay``, which emits ``checkout.session.completed`` and ``payment_intent.succeeded``
    without delivering them. Returns the orders and their events, in emission order. About
    4.5 ms per order, mostly the stripe SDK and the stand-in, in this process."""
    from django.db import connection

    from marketlink.orders.services import order_place
    from marketlink.payments.checkout import checkout_open

    variants = new_variants(vendor, label, WEBHOOK_VARIANTS, SPREAD_STOCK)
    orders = []
    # Each service call commits by itself: this connection need not wait for the disk at each
    # commit (the rows are the same, only their durability is not). A session SET: the runner
    # connects to PostgreSQL directly, never through PgBouncer (``bench/hosts.py``), where it
    # would outlive its transaction on a server connection other clients then get.
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        for number in range(count):
            customer = customers[number % len(customers)]
            order, _ = order_place(
                customer=customer,
                customer_email=customer.email,
                variant_id=variants[number % len(variants)].id,
            )
            checkout_open(order=order, base_url=base_url)
            standin.pay(order.checkout_session_id)
            orders.append(order)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")
    mine = {str(order.id) for order in orders}
    events = [
        e for e in standin.events if e["data"]["object"].get("metadata", {}).get("order_id") in mine
    ]
    return orders, events


def new_variants(vendor: Any, label: str, count: int, stock: int) -> list[Any]:
    from marketlink.catalog.models import ServiceVariant
    from marketlink.catalog.services import service_create

    service = service_create(vendor=vendor, name=f"bench {label}")
    return ServiceVariant.objects.bulk_create(
        ServiceVariant(
            service=service,
            name=f"{label} {number}",
            price=Decimal("25.00"),
            estimated_minutes=30,
            stock=stock,
            units_made_available=stock,  # the ledger a bulk insert must keep by hand
        )
        for number in range(count)
    )
