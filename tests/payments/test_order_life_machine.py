"""An order's life as a Hypothesis state machine: place, pay, cancel, expire, refund (through
marketlink, in part or whole in the Stripe Dashboard, pending, failed and asked again), complete,
and the provider's events delivered late, twice and in any order, with the invariants checked
after every step. With payouts on, completing releases the vendor's share, refunds after the
release reverse it (refused once the vendor's balance left for their bank: a debt), and
disputes open and close, won or lost; the money invariant is checked with the others.

The payments are real ones through the Stripe SDK and the local stand-in: the customer opens the
payment link (a Checkout Session is made there) and pays; the stand-in emits its events, which
the machine delivers, signed, to the webhook whenever it likes, or again. Refunds are staff's,
through the service, or the Dashboard's (the stand-in's own), and the provider's refund events
follow; pending refunds settle, or fail, when the machine says. Tasks run inline, on commit.

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
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from invariants import invariant_violations
from order_helpers import refreshed, stock_of
from payout_helpers import onboarded_account
from stripe_shop import Shop, lapse

from marketlink.accounts.models import Role
from marketlink.money import to_minor_units
from marketlink.orders.services import orders_expire
from marketlink.outbox.drainer import drain
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
# Lives that start with paid orders spend their steps on refunds: partial, several per payment,
# pending, failed and asked again, late.
REFUND_SETTINGS = bounded_machine(max_examples=20, steps=12)
STOCK = 2  # fewer units than orders, so a late payment may find none left
MAX_ORDERS = 3
PAYMENT_EVENTS = {"checkout.session.completed", "payment_intent.succeeded"}
REFUND_EVENTS = {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
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
        # The refunds the shop has been told of, as it must have recorded them, by id:
        # {"intent", "amount", "status", "ever"} ("ever": it succeeded at some point).
        self.refunds_told: dict[str, dict[str, Any]] = {}
        # Payments the shop decided to give back (late, with no unit left).
        self.given_back: set[str] = set()

    def act(self, call: Any) -> Any:
        """``call()`` with its on-commit work (signals, tasks) run as after a real commit, and
        what it owes (the outbox) done, as a consumer would. (Within the example's transaction
        nothing commits, so the outbox's one wake per transaction would come only once.)"""
        with self.on_commit(execute=True):
            done = call()
        drain()
        return done

    def order_of(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The order an event is about: by the order id it carries, else (a refund made in the
        Dashboard carries none) by its payment."""
        ref, intent = _order_of(event), _intent_of(event)
        return next(
            (o for o in self.orders if o["id"] == ref or (intent and o["intent"] == intent)), None
        )

    def own_events(self) -> list[dict[str, Any]]:
        return [event for event in self.standin.events if self.order_of(event) is not None]

    def learn(self, refund: dict[str, Any]) -> None:
        """What the shop records of a refund reported as ``refund``: failed and canceled are
        final; succeeded only moves on to failed."""
        told = self.refunds_told.setdefault(
            refund["id"],
            {"intent": refund["payment_intent"], "amount": refund["amount"], "status": None},
        )
        told.setdefault("ever", False)
        if told["status"] in ("failed", "canceled"):
            return
        if told["status"] == "succeeded" and refund["status"] != "failed":
            return
        told["status"] = refund["status"]
        told["ever"] = told["ever"] or refund["status"] == "succeeded"

    def learn_all(self, intent: str) -> None:
        """The shop read the payment's refunds from the provider (a refunded charge's event, or
        a refund through the service, which reads first)."""
        for refund in self.standin.refunds.values():
            if refund["payment_intent"] == intent:
                self.learn(refund)

    def knows_payment(self, intent: str) -> bool:
        """Whether the shop can tell which order a refund without an order id is about."""
        return (
            intent in self.told()
            or intent in self.given_back
            or any(told["intent"] == intent for told in self.refunds_told.values())
        )

    def refunded_by_now(self, order: dict[str, Any]) -> None:
        """The order is refunded once the refunds of its own payment that ever succeeded reach
        its total; a payment given back is not its own."""
        intent = order["intent"]
        if not intent or intent in self.given_back or order["status"] == "refunded":
            return
        ever = sum(
            told["amount"]
            for told in self.refunds_told.values()
            if told["intent"] == intent and told["ever"]
        )
        total = to_minor_units(refreshed(order).total_amount, refreshed(order).currency)
        if ever >= total:
            order["status"] = "refunded"

    def refundable_at_provider(self) -> list[dict[str, Any]]:
        """Orders whose payment the provider took and has not given back in full yet."""
        intents = self.standin.payment_intents
        given: dict[str, int] = {}
        for refund in self.standin.refunds.values():
            if refund["status"] in ("succeeded", "pending"):
                given[refund["payment_intent"]] = (
                    given.get(refund["payment_intent"], 0) + (refund["amount"])
                )
        return [
            order
            for order in self.orders
            if order["intent"]
            and intents[order["intent"]]["status"] == "succeeded"
            and given.get(order["intent"], 0) < intents[order["intent"]]["amount"]
        ]

    def pending_refunds(self) -> list[str]:
        ours = {order["intent"] for order in self.orders}
        return sorted(
            refund["id"]
            for refund in self.standin.refunds.values()
            if refund["status"] == "pending" and refund["payment_intent"] in ours
        )

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
        @rule(which=pick, pending=st.booleans())
        def refund(self, which: int, pending: bool) -> None:
            """Staff refund what is left through the service (it reads the payment's refunds
            first); the provider's refund events follow."""
            self._refund(self._order(which, self._in(*REFUNDABLE)), pending)

        def _refund(self, order: dict[str, Any], pending: bool) -> None:
            self.life.standin.refund_status = "pending" if pending else "succeeded"
            self.life.act(lambda: order_refund(order=refreshed(order)))
            self.life.learn_all(order["intent"])
            self.life.refunded_by_now(order)

        @precondition(lambda self: self.life.refundable_at_provider())
        @rule(which=pick, whole=st.booleans(), pending=st.booleans())
        def refund_in_dashboard(self, which: int, whole: bool, pending: bool) -> None:
            """Staff give back part (1.00) or the rest of a payment in Stripe's Dashboard; the
            shop hears of it only through its events."""
            order = self._order(which, self.life.refundable_at_provider())
            self.life.standin.refund_status = "pending" if pending else "succeeded"
            self.life.standin.refund(order["intent"], None if whole else 100)

        @precondition(lambda self: self.life.pending_refunds())
        @rule(which=pick, succeeds=st.booleans())
        def settle_refund(self, which: int, succeeds: bool) -> None:
            """The bank's last word on a pending refund."""
            pending = self.life.pending_refunds()
            self.life.standin.settle_refund(
                pending[which % len(pending)], "succeeded" if succeeds else "failed"
            )

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
            response = self.life.act(lambda: shop.deliver(event))
            assert response.status_code == 200, response.content
            self._expect_after(event, free)

        def _expect_after(self, event: dict[str, Any], free: int) -> None:
            """What the first news of a payment, or news of a refund, does to its order; every
            other event leaves the status alone (expired checkouts of a released order, a
            payment told twice)."""
            order = self.life.order_of(event)
            assert order is not None
            intent = _intent_of(event)
            if event["type"] == "charge.refunded":
                self.life.learn_all(intent or "")
                self.life.refunded_by_now(order)
                return
            if event["type"] in REFUND_EVENTS:
                if _order_of(event) or self.life.knows_payment(intent or ""):
                    self.life.learn(event["data"]["object"])
                    self.life.refunded_by_now(order)
                return
            if event["type"] not in PAYMENT_EVENTS:
                return
            if intent in self.life.given_back or intent in self.life.told(but=event["id"]):
                return
            if order["status"] == "pending":
                order["status"] = "processing"
            elif order["status"] == "cancelled":
                # Late: the unit is taken again if one is free, or the payment goes back (the
                # order stays cancelled: it never was paid).
                if free > 0:
                    order["status"] = "processing"
                else:
                    self.life.given_back.add(intent or "")

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


@pytest.fixture
def refund_life(life: type) -> type:
    class RefundLife(life):  # type: ignore[misc,valid-type]
        @initialize()
        def two_paid_orders(self) -> None:
            for _ in range(2):
                self.place()
                self.pay(which=len(self.life.orders) - 1, told_at_once=True)

    return RefundLife


def test_the_refunds_of_paid_orders_keep_every_invariant(
    refund_life: type, abuse_limits_off: None
) -> None:
    hypothesis.stateful.run_state_machine_as_test(refund_life, settings=REFUND_SETTINGS)


# Lives that start with two paid orders, so their steps go to releases, refunds, reversals
# (refused once the vendor was paid out) and disputes.
PAYOUT_SETTINGS = bounded_machine(max_examples=20, steps=15)


@pytest.fixture
def payout_life(life: type, settings: Any, standin: StripeStandIn) -> type:
    settings.MARKETLINK = {
        **settings.MARKETLINK,
        "PAYOUTS_ENABLED": True,
        "PLATFORM_FEE_PERCENT": "10",
        "STRIPE_CONNECT_WEBHOOK_SECRET": standin.connect_webhook_secret,
    }

    class PayoutLife(life):  # type: ignore[misc,valid-type]
        """Payouts on: the vendor onboarded first, so its variant can be booked."""

        def __init__(self) -> None:
            super().__init__()
            vendor = self.life.variant.service.vendor
            self.account = onboarded_account(self.life.shop.api, standin, vendor)

        @initialize()
        def two_paid_orders(self) -> None:
            """Lives that start with money to pay out spend their steps on it."""
            for _ in range(2):
                self.place()
                self.pay(which=len(self.life.orders) - 1, told_at_once=True)

        @precondition(lambda self: self._in("completed"))
        @rule(which=pick)
        def refund_after_release(self, which: int) -> None:
            """A refund of an order whose share was released: its transfer is reversed."""
            self._refund(self._order(which, self._in("completed")), pending=False)

        @precondition(lambda self: self.life.orders)
        @rule()
        def vendor_paid_out(self) -> None:
            """The vendor's balance leaves for their bank: a reversal now is refused."""
            standin.pay_out(self.account)

        @precondition(lambda self: self._disputable())
        @rule(which=pick)
        def dispute(self, which: int) -> None:
            order = self._order(which, self._disputable())
            standin.dispute(order["intent"])

        @precondition(lambda self: self._open_disputes())
        @rule(which=pick, won=st.booleans())
        def close_dispute(self, which: int, won: bool) -> None:
            disputes = self._open_disputes()
            standin.close_dispute(disputes[which % len(disputes)], won=won)

        def _disputable(self) -> list[dict[str, Any]]:
            disputed = {d["payment_intent"] for d in self._disputes()}
            return [o for o in self.life.orders if o["intent"] and o["intent"] not in disputed]

        def _open_disputes(self) -> list[str]:
            return sorted(d["id"] for d in self._disputes() if d["status"] == "needs_response")

        def _disputes(self) -> list[dict[str, Any]]:
            ours = {order["intent"] for order in self.life.orders}
            found = {
                event["data"]["object"]["id"]: event["data"]["object"]
                for event in standin.events
                if event["type"].startswith("charge.dispute.")
            }
            return [d for d in found.values() if d["payment_intent"] in ours]

    return PayoutLife


def test_the_payouts_of_orders_keep_every_invariant(
    payout_life: type, abuse_limits_off: None
) -> None:
    hypothesis.stateful.run_state_machine_as_test(payout_life, settings=PAYOUT_SETTINGS)
