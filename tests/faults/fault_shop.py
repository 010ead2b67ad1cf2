"""What the fault cases make and do as a shop's people would: customers with tokens, variants
of one vendor, bookings and payments over real HTTP against the rig's site."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db.models import Q
from django.utils import timezone
from fault_rig import call
from invariants import assert_invariants
from live_site import wait_for

from marketlink.accounts.services import tokens_issue
from marketlink.orders.models import RepairOrder
from marketlink.outbox.models import EntryStatus, OutboxEntry
from marketlink.testing.factories import AccountFactory, VariantFactory


def customer() -> str:
    """A new customer's access token."""
    return tokens_issue(user=AccountFactory().user)["access"]


def vendor_token(variant: Any) -> str:
    return tokens_issue(user=variant.service.vendor.user)["access"]


def book(site: str, token: str, variant_id: Any, key: str | None = None) -> tuple[int, Any]:
    headers = {"Idempotency-Key": key} if key else None
    return call("POST", f"{site}/api/orders/", token=token, body={"variant_id": str(variant_id)},
                headers=headers)  # fmt: skip


def storm(clients: int, each: Callable[[int], Any], fault: Callable[[], None]) -> list[Any]:
    """``clients`` threads run ``each(number)`` at once while ``fault`` runs in this thread;
    returns what each returned, in order."""
    results: list[Any] = [None] * clients

    def run(number: int) -> None:
        results[number] = each(number)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    fault()
    for thread in threads:
        thread.join(timeout=120)
    return results


def booking_loop(site: str, variant_id: Any, seconds: float) -> Callable[[int], list[int]]:
    """A client that books again and again for ``seconds`` (a new customer each time), and
    returns the statuses it saw."""

    def each(number: int) -> list[int]:
        token = customer_token_pool[number % len(customer_token_pool)]
        statuses = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            status, _ = book(site, token, variant_id)
            statuses.append(status)
            time.sleep(0.05)
        return statuses

    return each


customer_token_pool: list[str] = []


def tokens(count: int) -> list[str]:
    while len(customer_token_pool) < count:
        customer_token_pool.append(customer())
    return customer_token_pool[:count]


def variant(stock: int, **extra: Any) -> Any:
    """A variant of a new vendor, bookable: payouts are on in the rig, and a case that does
    not pay its vendor out lets the gate open without an account (its payouts stay held)."""
    return VariantFactory(stock=stock, **{"service__vendor__payouts_ready": True, **extra})


def open_link(rig: Any, token: str, order_id: str) -> tuple[int, Any]:
    """What a customer does to pay: ``POST /checkout/`` for the link, then open it (the site
    opens the provider's checkout then, and redirects there: 303)."""
    status, body = call("POST", f"{rig.site}/api/orders/{order_id}/checkout/", token=token)
    if status != 200:
        return status, body
    return call("GET", body["data"]["payment_url"], follow=False)


def paid_at_provider(rig: Any, token: str, order_id: str) -> list[dict[str, Any]]:
    """Open the order's payment link, pay at the stand-in, and return the events it emitted
    for the order, undelivered, in order."""
    status, body = open_link(rig, token, order_id)
    assert status == 303, body
    session_id = RepairOrder.objects.get(pk=order_id).checkout_session_id
    rig.standin.pay(session_id)
    return events_of(rig, order_id)


def events_of(rig: Any, order_id: str) -> list[dict[str, Any]]:
    return [
        event
        for event in rig.standin.events
        if event["data"]["object"].get("metadata", {}).get("order_id") == str(order_id)
    ]


def status_of(order_id: Any) -> str:
    return str(RepairOrder.objects.get(pk=order_id).status)


def becomes(order_id: Any, *statuses: str, timeout: float = 30) -> str:
    return str(wait_for(lambda: status_of(order_id) in statuses and status_of(order_id),
                          timeout, f"order {order_id} to become {statuses}"))  # fmt: skip


def invariants_hold(rig: Any, timeout: float = 75) -> None:
    """The shared invariants, once the consumer has run what is due: the outbox drains a
    moment after its wake (a batch gathers), so what a case just paid may not be invoiced yet.
    Not waited for: an entry waiting out a retry's backoff, and one a killed drainer left
    claimed (the periodic run, once a minute, takes it up: the invariants hold meanwhile)."""

    def due() -> bool:
        now = timezone.now()
        return OutboxEntry.objects.filter(
            Q(status=EntryStatus.RUNNING, claimed_until__gt=now)
            | Q(status=EntryStatus.PENDING, due_at__lte=now)
        ).exists()

    wait_for(lambda: not due(), timeout, "the outbox to drain what is due")
    assert_invariants(standin=rig.standin)
