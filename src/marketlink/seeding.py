"""Demo data for the example site and for operators trying marketlink out.

Deterministic: every name, price and stock comes from a random generator seeded with the seed
and the thing's number (``Random("1:vendor:2")``), so the same ``--seed`` gives the same data,
also when a rerun with more vendors adds only the new ones. Idempotent: accounts are found by
email, a vendor's catalogue is made once, and each demo order carries the idempotency key
``demo-order-N``, so a rerun adds nothing.

Orders are made the way a site makes them: booked with ``order_place``, paid or failed through
the dummy gateway's checkout and the signed webhook pipeline, moved on by the invoice, the
vendor's completion and a refund. Two things are the demo's own:

- a ``paid`` order stays paid: its invoice is owed before it is paid, due only when the demo's
  reservations end (``DEMO_RESERVATION``), so no drainer moves it to processing meanwhile;
- pending orders keep their unit for ``DEMO_RESERVATION`` (``order_reservation_extend``).

With payouts on, each vendor onboards first (the dummy gateway's instant onboarding, told to the
site through the Connect webhook pipeline), so its services can be booked, and the completed
order's share is transferred to it.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from marketlink import conf
from marketlink.accounts.models import Account, Role
from marketlink.accounts.services import user_register
from marketlink.catalog.models import Service, ServiceVariant
from marketlink.catalog.services import service_create, variant_create
from marketlink.exceptions import Conflict
from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.orders.services import (
    order_cancel,
    order_complete,
    order_place,
    order_reservation_extend,
)
from marketlink.outbox.services import outbox_run_now, outbox_write
from marketlink.payments import refunds, webhooks
from marketlink.payments.checkout import checkout_open
from marketlink.payments.gateways.dummy.gateway import emit_session_event
from marketlink.payments.models import DummyCheckoutSession
from marketlink.payments.receivers import INVOICE_KIND
from marketlink.vendors.models import VendorProfile
from marketlink.vendors.services import vendor_profile_create

DEMO_PASSWORD = "demo-pass-123"
DEMO_RESERVATION = timedelta(days=30)
# Where the demo site runs (the dummy checkout's return pages); only the path matters.
DEMO_SITE = "http://127.0.0.1:8000/"
# Every status an order can have, in the order the demo orders cycle through them.
STATUS_CYCLE = [
    OrderStatus.PENDING,
    OrderStatus.PAID,
    OrderStatus.PROCESSING,
    OrderStatus.COMPLETED,
    OrderStatus.CANCELLED,
    OrderStatus.FAILED,
    OrderStatus.REFUNDED,
]

# (service, description, [(variant, base price, minutes)])
CATALOGUE = [
    ("Oil change", "Engine oil and filter.", [("Basic", 30, 20), ("Synthetic", 60, 30)]),
    ("Brake service", "Pads, discs and fluid check.", [("Pads", 90, 60), ("Full", 200, 120)]),
    ("Tyre fitting", "Fit and balance four tyres.", [("Standard", 40, 45)]),
]
FIRST_NAMES = ["Ada", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas"]
LAST_NAMES = ["Okafor", "Lindqvist", "Moreau", "Nakamura", "Costa", "Weber", "Silva", "Novak"]
GARAGE_WORDS = ["Corner", "Riverside", "Northside", "Hilltop", "Station", "Harbour", "Oak"]
GARAGE_KINDS = ["Garage", "Motors", "Auto Care", "Car Clinic", "Service Centre"]


@dataclass(frozen=True)
class Login:
    role: str
    email: str
    password: str
    name: str


@dataclass
class SeedResult:
    logins: list[Login] = field(default_factory=list)
    created: dict[str, int] = field(
        default_factory=lambda: {"vendors": 0, "customers": 0, "variants": 0, "orders": 0}
    )


def _rng(seed: int, kind: str, number: int) -> random.Random:
    return random.Random(f"{seed}:{kind}:{number}")  # noqa: S311 - demo data, not secrets


def seed_demo(
    *, seed: int = 1, vendors: int = 3, customers: int = 3, orders: int = 14, password: str
) -> SeedResult:
    """Create what is missing of the demo; returns the logins and what was created."""
    if orders and conf.get().PAYMENT_GATEWAY != "dummy":
        raise ImproperlyConfigured(
            "Demo orders are paid through the dummy gateway: use --orders 0 with "
            "PAYMENT_GATEWAY 'stripe'."
        )
    result = SeedResult()
    people = [_customer(seed, number, password, result) for number in range(1, customers + 1)]
    profiles = [_vendor(seed, number, password, result) for number in range(1, vendors + 1)]
    variants = list(
        ServiceVariant.objects.filter(
            service__vendor__in=profiles, archived_at__isnull=True
        ).order_by("service__vendor__business_name", "service__name", "name", "pk")
    )
    for number in range(1, orders + 1):
        if variants and people and _order(seed, number, people, variants):
            result.created["orders"] += 1
    return result


def _customer(seed: int, number: int, password: str, result: SeedResult) -> Account:
    email = "customer@example.com" if number == 1 else f"customer{number}@example.com"
    rng = _rng(seed, "customer", number)
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    account = Account.objects.filter(email=email).first()
    if account is None:
        account = user_register(
            email=email, password=password, role=Role.CUSTOMER, first_name=first, last_name=last
        )
        result.created["customers"] += 1
    result.logins.append(Login("customer", email, password, f"{first} {last}"))
    return account


@transaction.atomic
def _vendor(seed: int, number: int, password: str, result: SeedResult) -> VendorProfile:
    email = f"vendor{number}@example.com"
    rng = _rng(seed, "vendor", number)
    business = f"{rng.choice(GARAGE_WORDS)} {rng.choice(GARAGE_KINDS)} {number}"
    account = Account.objects.filter(email=email).first()
    if account is None:
        account = user_register(email=email, password=password, role=Role.VENDOR)
        result.created["vendors"] += 1
    profile = VendorProfile.objects.filter(user=account.user).first() or vendor_profile_create(
        user=account.user, business_name=business, address=f"{rng.randrange(1, 200)} Main Street"
    )
    result.logins.append(Login("vendor", email, password, profile.business_name))
    _payout_account(profile)
    if Service.objects.filter(vendor=profile).exists():
        return profile
    for name, description, variants in CATALOGUE:
        service = service_create(vendor=profile, name=name, description=description)
        for variant_name, base_price, minutes in variants:
            variant_create(
                service=service,
                name=variant_name,
                # Whole amounts with .50 or .99: valid in every two-decimal currency.
                price=Decimal(base_price + rng.randrange(-5, 15))
                + rng.choice([Decimal("0.00"), Decimal("0.50"), Decimal("0.99")]),
                estimated_minutes=minutes,
                stock=rng.randrange(3, 12),
            )
            result.created["variants"] += 1
    return profile


def _payout_account(profile: VendorProfile) -> None:
    """With payouts on, the vendor onboards at once on the dummy gateway (once)."""
    if not (conf.get().PAYOUTS_ENABLED and apps.is_installed("marketlink.payouts")):
        return
    from marketlink.payments.gateways.dummy.connect_views import onboarding_finish
    from marketlink.payments.models import DummyAccount
    from marketlink.payouts.accounts import account_of_vendor

    account = DummyAccount.objects.get(pk=account_of_vendor(profile).account_id)
    if not account.onboarded:
        onboarding_finish(account)


def _order(seed: int, number: int, people: list[Account], variants: list[ServiceVariant]) -> bool:
    """Demo order ``number``, in status ``STATUS_CYCLE[number - 1]``; False if it exists."""
    customer = people[(number - 1) % len(people)]
    key = f"demo-order-{number}"
    if RepairOrder.objects.filter(customer=customer.user, idempotency_key=key).exists():
        return False
    start = _rng(seed, "order", number).randrange(len(variants))
    for variant in variants[start:] + variants[:start]:
        try:
            order, _ = order_place(
                customer=customer.user,
                customer_email=customer.email,
                variant_id=variant.pk,
                idempotency_key=key,
            )
        except Conflict:  # sold out: the next variant
            continue
        _bring_to(order, STATUS_CYCLE[(number - 1) % len(STATUS_CYCLE)])
        return True
    return False


def _bring_to(order: RepairOrder, status: str) -> None:
    if status == OrderStatus.PENDING:
        order_reservation_extend(order_id=order.pk, until=timezone.now() + DEMO_RESERVATION)
        return
    if status == OrderStatus.CANCELLED:
        order_cancel(order=order, source=ChangeSource.CLI)
        return
    if status == OrderStatus.FAILED:
        _checkout_event(order, "checkout.session.async_payment_failed", paid=False)
        return
    if status == OrderStatus.PAID:
        # Owed already, due later: the payment's own entry for it is this one.
        outbox_write(
            kind=INVOICE_KIND,
            subject_id=order.pk,
            due_at=timezone.now() + DEMO_RESERVATION,
            wake=False,
        )
    _checkout_event(order, "checkout.session.completed", paid=True)
    if status == OrderStatus.PAID:
        return
    # Sent here rather than left to a drainer, so the order moves on whether or not a consumer
    # runs.
    outbox_run_now(kind=INVOICE_KIND, subject_id=order.pk)
    order.refresh_from_db()
    if status == OrderStatus.COMPLETED:
        order_complete(order=order, source=ChangeSource.CLI)
    elif status == OrderStatus.REFUNDED:
        refunds.order_refund(order=order, source=ChangeSource.CLI)


def _checkout_event(order: RepairOrder, event_type: str, *, paid: bool) -> None:
    """The customer at the dummy checkout: the session opened, paid (or its payment failed),
    and the signed event through the webhook pipeline, as the checkout page sends it."""
    checkout_open(order=order, base_url=DEMO_SITE)
    session = DummyCheckoutSession.objects.get(order=order, status="open")
    with transaction.atomic():
        if paid:
            session.status, session.payment_status = "complete", "paid"
            session.payment_intent_id = f"pi_dummy_{secrets.token_hex(12)}"
            session.save(update_fields=["status", "payment_status", "payment_intent_id"])
        # Kept in the dummy's own event store, as its checkout page does.
        payload, signature = emit_session_event(session, event_type)
        webhooks.webhook_receive(payload=payload, signature=signature)
