"""An order's life as a Hypothesis state machine: place, pay, cancel, expire, refund, complete,
and the provider's events delivered late, twice and in any order, with the invariants checked
after every step.

The payments are real ones through the Stripe SDK and the local stand-in: the customer opens the
payment link (a Checkout Session is made there) and pays; the stand-in emits its events, which
the machine delivers, signed, to the webhook whenever it likes, or again. Refunds are staff's,
through the service, and the provider's refund events follow. Tasks run inline, on commit.

Besides the shared invariants (``invariants.invariant_violations``), the machine keeps its own
model of each order's status and checks the database agrees after every step.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
from django.db import transaction
from fuzzing import bounded_machine
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from invariants import invariant_violations
from order_helpers import refreshed, stock_of
from stripe_shop import Shop, lapse

from marketlink.accounts.models import Role
from marketlink.orders.services import orders_expire
from marketlink.payments.refunds import order_refund
from marketlink.testing.factories import AccountFactory, VariantFactory
from marketlink.testing.stripe_server import StripeStandIn

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.django_db,
    pytest.mark.usefixtures("tasks_run_inline"),
]

# Deterministic and bounded: the same runs every time, well under a minute.
MACHINE_SETTINGS = bounded_machine(max_examples=30, steps=15)
STOCK = 2  # fewer units than orders, so a late payment may find none left
MAX_ORDERS = 3
PAYMENT_EVENTS = {"checkout.session.completed", "payment_intent.succeeded"}
REFUNDABLE = {"paid", "processing", "completed"}
pick = st.integers(min_value=0, max_value=1000)


class LifeOfOrders:
    """What the machine expects of its orders, and the levers it pulls on them."""

    def __init__(self, shop: Shop, on_commit: Any) -> None:
        self.shop = shop
        self.standin: StripeStandIn = shop.standin
        self.on_commit = on_commit
        self.variant = VariantFactory(stock=STOCK)
        self.vendor = self.variant.service.vendor.user
        self.staff = AccountFactory(user__is_staff=True).user
        self.orders: list[dict[str, Any]] = []  # {"id", "customer", "status", "intent"}
        # Events the stand-in emitted about this machine's orders, by id.
        self.seen_events: set[str] = set()

    def act(self, call: Any) -> Any:
        """``call()`` with its on-commit work (signals, tasks) run as after a real commit."""
        with self.on_commit(execute=True):
            return call()

    def own_events(self) -> list[dict[str, Any]]:
        ours = {order["id"] for order in self.orders}
        return [event for event in self.standin.events if _order_of(event) in ours]

    def told(self, but: str | None = None) -> set[str | None]:
        """Payments whose success a delivered event (other than ``but``) told the shop of."""
        return {
            _intent_of(event)
            for event in self.own_events()
            if event["id"] in self.shop.delivered
            and event["id"] != but
            and event["type"] in PAYMENT_EVENTS
        }

    def in_flight(self) -> set[str]:
        """Payments taken at the provider whose success no delivered event has told us of."""
        return {order["intent"] for order in self.orders if order["intent"]} - self.told()


def _order_of(event: dict[str, Any]) -> str | None:
    obj = event["data"]["object"]
    return obj.get("metadata", {}).get("order_id") or obj.get("client_reference_id")


def _intent_of(event: dict[str, Any]) -> str | None:
    obj = event["data"]["object"]
    return obj["id"] if obj["object"] == "payment_intent" else obj.get("payment_intent")


@pytest.fixture
def life(shop: Shop, django_capture_on_commit_callbacks: Any) -> type:
    """The machine's class, bound to this test's stand-in and shop (a new shop per example)."""

    class OrderLife(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            # Each example in a savepoint rolled back at its end: no example sees another's
            # orders (a failing one would otherwise break the next one's invariants too).
            self.example = transaction.atomic()
            self.example.__enter__()
            self.life = LifeOfOrders(shop, django_capture_on_commit_callbacks)

        def teardown(self) -> None:
            transaction.set_rollback(True)
            self.example.__exit__(None, None, None)

        @precondition(lambda self: len(self.life.orders) < MAX_ORDERS)
        @rule()
        def place(self) -> None:
            customer = AccountFactory(role=Role.CUSTOMER).user
            free = stock_of(self.life.variant)
            response = self.life.act(
                lambda: shop.api.post(
                    "/orders/", {"variant_id": str(self.life.variant.id)}, user=customer
                )
            )
            if free == 0:
                assert response.status_code == 409, response.json()
                return
            assert response.status_code == 201, response.json()
            order = response.json()["data"]
            self.life.orders.append(
                {"id": order["id"], "customer": customer, "status": "pending", "intent": None}
            )
            self.life.orders[-1]["payment_url"] = order["payment_url"]

        @precondition(lambda self: self._payable())
        @rule(which=pick, told_at_once=st.booleans())
        def pay(self, which: int, told_at_once: bool) -> None:
            """The customer opens the payment link and pays. Stripe tells the shop at once (its
            events delivered as emitted), or later: ``deliver`` picks them in any order."""
            order = self._order(which, self._payable())
            response = shop.browser.get(order["payment_url"])
            assert response.status_code == 303, response.content
            intent = self.life.standin.pay(shop.session_id(order))
            order["intent"] = intent["id"]
            if told_at_once:
                for event in self._undelivered():
                    self._deliver(event)

        @precondition(lambda self: self._undelivered())
        @rule(which=pick)
        def deliver(self, which: int) -> None:
            """One of the events Stripe has not delivered yet, in any order."""
            events = self._undelivered()
            self._deliver(events[which % len(events)])

        @precondition(lambda self: self._delivered())
        @rule(which=pick)
        def deliver_again(self, which: int) -> None:
            """A duplicate: an event already delivered changes nothing."""
            events = self._delivered()
            event = events[which % len(events)]
            before = self._statuses()
            assert shop.deliver(event).status_code == 200
            assert self._statuses() == before, f"redelivered {event['type']} changed an order"

        @precondition(lambda self: self.life.orders)
        @rule(which=pick)
        def cancel(self, which: int) -> None:
            order = self._order(which, self._paid_unheard() if which % 2 else None)
            response = self.life.act(
                lambda: shop.api.post(f"/orders/{order['id']}/cancel/", user=order["customer"])
            )
            if order["status"] == "pending":
                assert response.status_code == 200, response.json()
                order["status"] = "cancelled"
            else:
                assert response.status_code == 409, response.json()

        @precondition(lambda self: self.life.orders)
        @rule(which=pick)
        def expire(self, which: int) -> None:
            """The reservation's time is up, and the expiry job runs."""
            order = self._order(which, self._paid_unheard() if which % 2 else None)
            lapse(order)
            expired = self.life.act(orders_expire)
            assert expired == (1 if order["status"] == "pending" else 0)
            if order["status"] == "pending":
                order["status"] = "cancelled"

        @precondition(lambda self: self._in(*REFUNDABLE))
        @rule(which=pick)
        def refund(self, which: int) -> None:
            """Staff refund through the service; the provider's refund events follow."""
            order = self._order(which, self._in(*REFUNDABLE))
            self.life.act(lambda: order_refund(order=refreshed(order)))
            order["status"] = "refunded"

        @precondition(lambda self: self.life.orders)
        @rule(which=pick)
        def complete(self, which: int) -> None:
            order = self._order(which, self._in("processing") if which % 2 else None)
            response = self.life.act(
                lambda: shop.api.post(f"/orders/{order['id']}/complete/", user=self.life.vendor)
            )
            if order["status"] == "processing":
                assert response.status_code == 200, response.json()
                order["status"] = "completed"
            else:
                assert response.status_code == 409, response.json()

        @invariant()
        def statuses_are_the_expected_ones(self) -> None:
            expected = {order["id"]: order["status"] for order in self.life.orders}
            assert self._statuses() == expected

        @invariant()
        def invariants_hold(self) -> None:
            problems = invariant_violations(
                standin=self.life.standin, payments_in_flight=self.life.in_flight()
            )
            assert not problems, "\n".join(problems)

        # -- the model ------------------------------------------------------------------------

        def _deliver(self, event: dict[str, Any]) -> None:
            free = stock_of(self.life.variant)
            response = shop.deliver(event)
            assert response.status_code == 200, response.content
            self._expect_after(event, free)

        def _expect_after(self, event: dict[str, Any], free: int) -> None:
            """What the first news of a payment does to its order; every other event leaves
            the status alone (refund events of a refund already made, expired checkouts of a
            released order, a payment told twice)."""
            order = next(o for o in self.life.orders if o["id"] == _order_of(event))
            if event["type"] not in PAYMENT_EVENTS:
                return
            if _intent_of(event) in self.life.told(but=event["id"]):
                return
            if order["status"] == "pending":
                order["status"] = "processing"
            elif order["status"] == "cancelled":
                # Late: the unit is taken again if one is free, or the payment goes back.
                order["status"] = "processing" if free > 0 else "refunded"

        def _order(self, which: int, among: list[dict[str, Any]] | None = None) -> dict[str, Any]:
            """One of the orders (or of ``among``), so each rule meets the orders it is about
            more often than chance would bring them (cancel, expire and complete also meet
            the orders they must refuse)."""
            orders = among or self.life.orders
            return orders[which % len(orders)]

        def _in(self, *statuses: str) -> list[dict[str, Any]]:
            return [order for order in self.life.orders if order["status"] in statuses]

        def _paid_unheard(self) -> list[dict[str, Any]]:
            """Pending orders paid at the provider, the news not here yet: released now, their
            payment arrives late."""
            in_flight = self.life.in_flight()
            return [order for order in self._in("pending") if order["intent"] in in_flight]

        def _payable(self) -> list[dict[str, Any]]:
            return [order for order in self._in("pending") if not order["intent"]]

        def _statuses(self) -> dict[str, str]:
            return {order["id"]: refreshed(order).status for order in self.life.orders}

        def _undelivered(self) -> list[dict[str, Any]]:
            return [e for e in self.life.own_events() if e["id"] not in shop.delivered]

        def _delivered(self) -> list[dict[str, Any]]:
            return [e for e in self.life.own_events() if e["id"] in shop.delivered]

    return OrderLife


def test_the_life_of_orders_keeps_every_invariant(life: type, abuse_limits_off: None) -> None:
    # One customer and one address book, pay and cancel far past the per-customer limits and
    # throttles (lifted after the stand-in's settings, which replace MARKETLINK).
    hypothesis.stateful.run_state_machine_as_test(life, settings=MACHINE_SETTINGS)
