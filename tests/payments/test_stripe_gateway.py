"""The Stripe gateway end to end: the real ``stripe`` SDK over HTTP to the local Stripe stand-in
(``marketlink.testing.stripe_server``), and the stand-in's own events fed back to the webhook.

The stand-in runs with ``auto_deliver=False``: each test takes the events Stripe emitted and
delivers them, signed with the endpoint secret, through Django's test client, in the order it
chooses (Stripe does not guarantee one). So every test is deterministic and runs in its own
rolled-back transaction; background work queued with ``on_commit`` runs when the test says so,
in Huey's immediate mode (the embedded default).
"""

from __future__ import annotations

import copy
import json
import secrets
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from stripe_shop import (
    WEBHOOK,
    Shop,
    api_calls,
    history,
    lapse,
    status_of,
    stock_of,
    stripe_settings,
)

from marketlink.orders.models import RepairOrder
from marketlink.payments.models import EventStatus, Invoice, PaymentEvent, Refund
from marketlink.testing.factories import AccountFactory, VariantFactory, VendorProfileFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]


# --- The payment link --------------------------------------------------------------------------


def test_booking_and_reading_never_call_stripe(shop, standin, api, customer_user):
    variant = VariantFactory(stock=3)
    order = shop.book(customer_user, variant)
    assert order["payment_url"].startswith("http://testserver/api/payments/pay/")
    assert standin.requests_log == []
    detail = api.get(f"/orders/{order['id']}/", user=customer_user).json()["data"]
    assert detail["payment_url"] == order["payment_url"]
    again = api.post(f"/orders/{order['id']}/checkout/", user=customer_user)
    assert again.status_code == 200
    assert again.json()["data"]["payment_url"] == order["payment_url"]
    assert api.get("/orders/my/", user=customer_user).json()["pagination"]["count"] == 1
    assert standin.requests_log == []
    assert stock_of(variant) == 2


@pytest.mark.parametrize(
    ("currency", "price", "minor_units"),
    [("usd", Decimal("129.50"), 12950), ("jpy", Decimal("1500.00"), 1500)],
)
def test_opening_the_link_makes_a_session_with_the_orders_terms(
    shop, standin, settings, customer_user, currency, price, minor_units
):
    settings.MARKETLINK = stripe_settings(
        standin,
        CURRENCY=currency,
        RESERVATION_TTL=3600,
        SUCCESS_URL="https://shop.example/orders/{order_id}/paid?cs={CHECKOUT_SESSION_ID}",
        CANCEL_URL="https://shop.example/orders/{order_id}/unpaid",
    )
    variant = VariantFactory(price=price, name="Full service", service__name="Bike repair")
    order = shop.book(customer_user, variant)
    stored = RepairOrder.objects.get(pk=order["id"])

    response = shop.open_link(order)

    assert response.status_code == 303
    [session] = standin.sessions.values()
    assert response["Location"] == session["url"]
    assert session["status"] == "open"
    assert session["amount_total"] == minor_units
    assert session["currency"] == currency
    [request] = standin.requests_log
    assert (request.method, request.path) == ("POST", "/v1/checkout/sessions")
    params = request.params
    # Derived from the order, the session it replaces (none) and the session's end: a retry with
    # the same terms gets the same session back.
    assert request.idempotency_key == f"marketlink-checkout-{order['id']}-0-{params['expires_at']}"
    assert params["mode"] == "payment"
    [item] = params["line_items"]
    assert item["quantity"] == "1"
    assert item["price_data"]["unit_amount"] == str(minor_units)
    assert item["price_data"]["currency"] == currency
    assert item["price_data"]["product_data"]["name"] == (
        f"{variant.service.vendor.business_name}: {variant.name}"
    )
    assert params["metadata"] == {"order_id": order["id"]}
    assert params["payment_intent_data"] == {
        "metadata": {"order_id": order["id"]},
        "transfer_group": f"order_{order['id']}",  # what the vendor's transfer names too
    }
    assert params["client_reference_id"] == order["id"]
    assert params["customer_email"] == customer_user.email.lower()
    assert int(params["expires_at"]) == int(stored.expires_at.timestamp())
    assert session["expires_at"] == int(stored.expires_at.timestamp())
    assert params["success_url"] == (
        f"https://shop.example/orders/{order['id']}/paid?cs={{CHECKOUT_SESSION_ID}}"
    )
    assert params["cancel_url"] == f"https://shop.example/orders/{order['id']}/unpaid"
    stored.refresh_from_db()
    assert stored.checkout_session_id == session["id"]
    assert stored.status == "pending"


def test_default_return_pages_and_the_thirty_minute_floor(shop, standin, customer_user):
    """Without templates the customer comes back to marketlink's own pages. With the default
    30-minute reservation the session cannot end with it (Stripe wants 30 minutes from its
    creation): it gets Stripe's earliest end instead, a minute of margin included."""
    order = shop.book(customer_user, VariantFactory())
    assert shop.open_link(order).status_code == 303
    [request] = standin.requests_log
    own = f"http://testserver/api/orders/{order['id']}"
    assert request.params["success_url"] == own + "/success/?session_id={CHECKOUT_SESSION_ID}"
    assert request.params["cancel_url"] == own + "/cancel/"
    reservation_end = RepairOrder.objects.get(pk=order["id"]).expires_at.timestamp()
    created = standin.sessions[shop.session_id(order)]["created"]
    assert int(request.params["expires_at"]) - created >= 30 * 60
    # Stripe's 30-minute floor plus a minute, rounded up to a 5-minute mark (stable retries).
    assert 0 <= int(request.params["expires_at"]) - reservation_end <= 7 * 60
    assert int(request.params["expires_at"]) % 300 == 0


@pytest.mark.urls("payments_prefix_urls")
def test_return_pages_follow_the_hosts_url_prefix(shop, standin, customer_user):
    """A host may mount marketlink anywhere; the Checkout return URLs must point where it is."""
    shop.api.prefix = "/shop-api"
    order = shop.book(customer_user, VariantFactory())
    assert "/shop-api/payments/pay/" in order["payment_url"]
    assert shop.open_link(order).status_code == 303
    [request] = standin.requests_log
    own = f"http://testserver/shop-api/orders/{order['id']}"
    assert request.params["success_url"] == own + "/success/?session_id={CHECKOUT_SESSION_ID}"
    assert request.params["cancel_url"] == own + "/cancel/"
    assert shop.browser.get(f"/shop-api/orders/{order['id']}/cancel/").status_code == 200


def test_opening_the_link_twice_reuses_the_session(shop, standin, customer_user):
    order = shop.book(customer_user, VariantFactory())
    first = shop.open_link(order)
    second = shop.open_link(order)
    assert first.status_code == second.status_code == 303
    assert first["Location"] == second["Location"]
    assert len(standin.sessions) == 1
    session_id = shop.session_id(order)
    assert api_calls(standin) == [
        ("POST", "/v1/checkout/sessions"),
        ("GET", f"/v1/checkout/sessions/{session_id}"),
    ]


def test_a_forged_or_stale_link_opens_nothing(shop, standin, customer_user, api):
    order = shop.book(customer_user, VariantFactory())
    forged = order["payment_url"].rstrip("/") + "x/"
    assert shop.browser.get(forged).status_code == 404
    api.post(f"/orders/{order['id']}/cancel/", user=customer_user)
    cancelled = shop.open_link(order)
    assert cancelled.status_code == 409
    assert standin.requests_log == []


def test_checkout_endpoint_is_for_the_customers_pending_orders(shop, api, customer_user):
    order = shop.book(customer_user, VariantFactory())
    stranger = AccountFactory().user
    assert api.post(f"/orders/{order['id']}/checkout/", user=stranger).status_code == 404
    api.post(f"/orders/{order['id']}/cancel/", user=customer_user)
    response = api.post(f"/orders/{order['id']}/checkout/", user=customer_user)
    assert response.status_code == 409


# --- Paying ------------------------------------------------------------------------------------


def test_paying_confirms_the_order_once_and_sends_one_invoice(
    mailoutbox, shop, standin, customer_user
):
    variant = VariantFactory(stock=5, price=Decimal("29.99"))
    order, session_id = shop.opened(customer_user, variant)
    intent = standin.pay(session_id)
    completed, succeeded = shop.undelivered()
    assert (completed["type"], succeeded["type"]) == (
        "checkout.session.completed",
        "payment_intent.succeeded",
    )

    with shop.on_commit() as queued:
        response = shop.browser.post(
            WEBHOOK,
            payload := json.dumps(completed).encode(),
            content_type="application/json",
            headers={"Stripe-Signature": standin.sign(payload)},
        )
        shop.delivered.add(completed["id"])
    assert response.status_code == 200
    assert response.json()["data"]["status"] == "processed"
    # Paid, and the invoice is only queued for after the commit, not sent inside it.
    assert status_of(order) == "paid"
    assert mailoutbox == []
    assert len(queued) == 1
    for callback in queued:
        callback()
    assert status_of(order) == "processing"
    assert len(mailoutbox) == 1

    assert shop.deliver(succeeded).status_code == 200
    for event in (completed, succeeded):  # Stripe retries: nothing changes
        assert shop.deliver(event).status_code == 200

    stored = RepairOrder.objects.get(pk=order["id"])
    assert stored.status == "processing"
    assert stored.payment_intent_id == intent["id"]
    assert stored.paid_at is not None
    assert history(order) == [("pending", "paid", "webhook"), ("paid", "processing", "task")]
    assert len(mailoutbox) == 1
    assert Invoice.objects.filter(order_id=order["id"], sent_at__isnull=False).count() == 1
    assert stock_of(variant) == 4
    events = PaymentEvent.objects.filter(order_id=order["id"])
    assert sorted(events.values_list("event_type", "status", "attempts")) == [
        ("checkout.session.completed", EventStatus.PROCESSED, 1),
        ("payment_intent.succeeded", EventStatus.PROCESSED, 1),
    ]
    assert events.get(event_type="payment_intent.succeeded").result == "already paid"
    assert api_calls(standin) == [("POST", "/v1/checkout/sessions")]


def test_the_invoice_says_what_was_bought_from_whom(
    mailoutbox, shop, standin, settings, customer_user
):
    settings.MARKETLINK = stripe_settings(standin, INVOICE_FROM_EMAIL="billing@garage.example")
    vendor = VendorProfileFactory(business_name="Spoke & Chain")
    variant = VariantFactory(
        price=Decimal("129.50"),
        name="Full tune-up",
        service__name="Bike repair",
        service__vendor=vendor,
    )
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id)
    shop.deliver_new()

    [email] = mailoutbox
    stored = RepairOrder.objects.get(pk=order["id"])
    invoice = Invoice.objects.get(order=stored)
    assert invoice.number.startswith(f"ML-{stored.paid_at:%Y%m%d}-")
    assert email.to == [customer_user.email.lower()]
    assert email.from_email == "billing@garage.example"
    assert email.subject == f"Invoice {invoice.number} for Bike repair (Spoke & Chain)"
    [(html, mimetype)] = email.alternatives
    assert mimetype == "text/html"
    for part in (email.body, html):
        assert invoice.number in part
        assert ("Spoke &amp; Chain" if part is html else "Spoke & Chain") in part
        assert "Bike repair" in part
        assert "Full tune-up" in part
        assert "129.50 USD" in part
        assert f"{stored.paid_at:%Y-%m-%d %H:%M}" in part
    assert "<table>" in html


def test_a_host_overrides_the_invoice_templates(
    mailoutbox, shop, standin, settings, tmp_path, customer_user
):
    folder = tmp_path / "marketlink" / "email"
    folder.mkdir(parents=True)
    (folder / "invoice.txt").write_text("Our own invoice {{ invoice.number }} for {{ order.id }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]}]
    order, session_id = shop.opened(customer_user, VariantFactory())
    standin.pay(session_id)
    shop.deliver_new()
    [email] = mailoutbox
    number = Invoice.objects.get(order_id=order["id"]).number
    assert email.body == f"Our own invoice {number} for {order['id']}"
    assert "<table>" in email.alternatives[0][0]  # the HTML part is still the shipped one


def test_asynchronous_payment_succeeds_later(mailoutbox, shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id, async_payment=True)
    assert shop.deliver_new() == [("checkout.session.completed", 200)]
    assert status_of(order) == "pending"
    assert mailoutbox == []
    standin.succeed_async(session_id)
    assert shop.deliver_new() == [
        ("checkout.session.async_payment_succeeded", 200),
        ("payment_intent.succeeded", 200),
    ]
    assert status_of(order) == "processing"
    assert len(mailoutbox) == 1
    assert history(order)[0] == ("pending", "paid", "webhook")
    assert stock_of(variant) == 4


def test_asynchronous_payment_fails_later(mailoutbox, shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id, async_payment=True)
    shop.deliver_new()
    standin.fail_async(session_id)
    assert shop.deliver_new() == [
        ("checkout.session.async_payment_failed", 200),
        ("payment_intent.payment_failed", 200),
    ]
    assert status_of(order) == "failed"
    assert stock_of(variant) == 5
    assert history(order) == [("pending", "failed", "webhook")]
    assert mailoutbox == []


def test_a_declined_card_leaves_the_order_pending_for_another_try(shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    standin.fail(session_id)
    assert shop.deliver_new() == [("payment_intent.payment_failed", 200)]
    assert status_of(order) == "pending"
    assert stock_of(variant) == 4
    assert history(order) == []
    standin.pay(session_id)  # the second card works
    shop.deliver_new()
    assert status_of(order) == "processing"


def test_an_expired_checkout_ends_a_lapsed_reservation(shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    lapse(order)
    standin.expire(session_id)
    assert shop.deliver_new() == [("checkout.session.expired", 200)]
    assert status_of(order) == "cancelled"
    assert stock_of(variant) == 5
    assert history(order) == [("pending", "cancelled", "webhook")]


def test_a_checkout_expiring_before_the_reservation_is_replaced(shop, standin, customer_user):
    """The customer's link keeps working: the next open makes a new session."""
    variant = VariantFactory(stock=5)
    order, first = shop.opened(customer_user, variant)
    standin.expire(first)
    assert shop.deliver_new() == [("checkout.session.expired", 200)]
    assert status_of(order) == "pending"
    assert stock_of(variant) == 4

    response = shop.open_link(order)

    assert response.status_code == 303
    second = shop.session_id(order)
    assert second != first
    assert response["Location"] == standin.sessions[second]["url"]
    assert standin.sessions[second]["status"] == "open"
    standin.pay(second)
    shop.deliver_new()
    assert status_of(order) == "processing"


# --- Refunds -----------------------------------------------------------------------------------


def paid_order(shop: Shop, customer: Any, variant: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    order, session_id = shop.opened(customer, variant)
    intent = shop.standin.pay(session_id)
    shop.deliver_new()
    assert status_of(order) == "processing"
    return order, intent


def test_the_vendor_refunds_once_and_the_unit_comes_back(
    shop, standin, api, customer_user, vendor_user
):
    variant = VariantFactory(stock=5, service__vendor=vendor_user.marketlink_vendor)
    order, intent = paid_order(shop, customer_user, variant)
    path = f"/orders/{order['id']}/refund/"
    assert api.post(path, user=customer_user).status_code == 403
    assert api.post(path, user=VendorProfileFactory().user).status_code == 404
    assert stock_of(variant) == 4

    response = api.post(path, user=vendor_user)

    assert response.status_code == 200
    assert response.json()["data"]["status"] == "refunded"
    assert stock_of(variant) == 5
    again = api.post(path, user=vendor_user)
    assert again.status_code == 200
    assert again.json()["data"]["status"] == "refunded"
    [refund] = standin.refunds.values()
    assert (refund["payment_intent"], refund["amount"]) == (intent["id"], 2999)
    refund_requests = [
        r for r in standin.requests_log if (r.method, r.path) == ("POST", "/v1/refunds")
    ]
    assert len(refund_requests) == 1
    row = Refund.objects.get()
    assert refund_requests[0].idempotency_key == f"marketlink-refund-{row.pk}"
    assert refund_requests[0].params == {
        "payment_intent": intent["id"],
        "amount": "2999",
        "metadata": {"marketlink_refund_id": str(row.pk), "order_id": order["id"]},
    }
    assert response.json()["data"]["amount_refunded"] == "29.99"
    # Stripe's own word on it arrives afterwards: already known, nothing moves.
    assert shop.deliver_new() == [("charge.refunded", 200), ("refund.created", 200)]
    assert stock_of(variant) == 5
    assert history(order)[-1] == ("processing", "refunded", "api")
    assert RepairOrder.objects.get(pk=order["id"]).refund_id == refund["id"]


def test_an_admin_refunds_and_a_pending_order_cannot_be(
    shop, standin, api, customer_user, staff_user
):
    variant = VariantFactory(stock=5)
    order, _ = paid_order(shop, customer_user, variant)
    assert api.post(f"/orders/{order['id']}/refund/", user=staff_user).status_code == 200
    assert status_of(order) == "refunded"
    pending = shop.book(customer_user, variant)
    assert api.post(f"/orders/{pending['id']}/refund/", user=staff_user).status_code == 409
    assert len(standin.refunds) == 1


def test_a_refund_with_stripe_down_is_502_and_changes_nothing(
    shop, standin, api, customer_user, staff_user
):
    variant = VariantFactory(stock=5)
    order, _ = paid_order(shop, customer_user, variant)
    standin.down = True
    response = api.post(f"/orders/{order['id']}/refund/", user=staff_user)
    assert response.status_code == 502
    assert response.json()["success"] is False
    assert status_of(order) == "processing"
    assert stock_of(variant) == 4
    standin.down = False
    assert api.post(f"/orders/{order['id']}/refund/", user=staff_user).status_code == 200
    assert len(standin.refunds) == 1


# --- Late and out-of-order events --------------------------------------------------------------


def test_a_failure_after_success_leaves_the_order_paid(shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id)
    completed, succeeded = shop.undelivered()
    shop.deliver_new()
    # Late or stray failure reports about the same payment.
    failed_intent = copy.deepcopy(succeeded["data"]["object"])
    failed_intent.update(status="requires_payment_method", amount_received=0)
    for event_type, obj in [
        ("payment_intent.payment_failed", failed_intent),
        ("checkout.session.async_payment_failed", completed["data"]["object"]),
    ]:
        late = {**succeeded, "id": f"evt_late_{secrets.token_hex(6)}", "type": event_type}
        late["data"] = {"object": obj}
        assert shop.deliver(late).status_code == 200
    assert status_of(order) == "processing"
    assert stock_of(variant) == 4
    assert len(history(order)) == 2


def test_an_earlier_sessions_expiry_after_payment_changes_nothing(shop, standin, customer_user):
    """Session A expires; the customer pays on session B; A's expiry is delivered last."""
    variant = VariantFactory(stock=5)
    order, first = shop.opened(customer_user, variant)
    standin.expire(first)
    [expired] = shop.undelivered()
    assert shop.open_link(order).status_code == 303  # the link notices and makes session B
    second = shop.session_id(order)
    assert second != first
    standin.pay(second)
    shop.deliver_new("checkout.session.completed", "payment_intent.succeeded")
    lapse(order)  # even with the reservation's time up
    assert shop.deliver(expired).status_code == 200
    assert status_of(order) == "processing"
    assert stock_of(variant) == 4


def test_an_expiry_delivered_after_completion_changes_nothing(shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id)
    [completed, _] = shop.undelivered()
    shop.deliver_new()
    lapse(order)
    expired = copy.deepcopy(completed)
    expired.update(id=f"evt_late_{secrets.token_hex(6)}", type="checkout.session.expired")
    expired["data"]["object"].update(status="expired")
    assert shop.deliver(expired).status_code == 200
    assert status_of(order) == "processing"
    assert stock_of(variant) == 4


# --- Stripe unavailable ------------------------------------------------------------------------


def test_stripe_down_when_the_link_is_opened(shop, standin, customer_user):
    variant = VariantFactory(stock=5)
    order = shop.book(customer_user, variant)
    standin.down = True
    response = shop.open_link(order)
    assert response.status_code == 502
    assert response.json()["success"] is False
    # The SDK retried (same key, so no second session could have been made), then gave up.
    keys = {r.idempotency_key for r in standin.requests_log}
    assert len(standin.requests_log) == 3
    assert len(keys) == 1
    assert next(iter(keys)).startswith(f"marketlink-checkout-{order['id']}-0-")
    stored = RepairOrder.objects.get(pk=order["id"])
    assert (stored.status, stored.checkout_session_id) == ("pending", None)
    assert stock_of(variant) == 4

    standin.down = False
    standin.stop()  # now it refuses connections altogether
    try:
        assert shop.open_link(order).status_code == 502
    finally:
        standin.start()
    assert status_of(order) == "pending"
    response = shop.open_link(order)
    assert response.status_code == 303
    assert len(standin.sessions) == 1


def test_eager_mode_hands_out_stripes_own_page(shop, standin, settings, api, customer_user):
    settings.MARKETLINK = stripe_settings(standin, PAYMENT_LINK_MODE="eager")
    order = shop.book(customer_user, VariantFactory())
    [session] = standin.sessions.values()
    assert order["payment_url"] == session["url"]
    assert order["payment_url"].startswith(standin.api_base + "/checkout/cs_test_")
    calls = len(standin.requests_log)
    assert (
        api.get(f"/orders/{order['id']}/", user=customer_user).json()["data"]["payment_url"]
        == session["url"]
    )
    assert len(standin.requests_log) == calls  # reading never calls Stripe
    again = api.post(f"/orders/{order['id']}/checkout/", user=customer_user)
    assert again.json()["data"]["payment_url"] == session["url"]
    assert len(standin.sessions) == 1


def test_eager_mode_with_stripe_down_cancels_the_booking(
    shop, standin, settings, api, customer_user
):
    settings.MARKETLINK = stripe_settings(standin, PAYMENT_LINK_MODE="eager")
    variant = VariantFactory(stock=1)
    standin.down = True
    response = api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user)
    assert response.status_code == 502
    assert response.json()["success"] is False
    [order] = RepairOrder.objects.filter(variant=variant)
    assert order.status == "cancelled"
    assert stock_of(variant) == 1
    [change] = order.history.all()
    assert (change.from_status, change.to_status) == ("pending", "cancelled")
    standin.down = False
    assert (
        api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user).status_code == 201
    )


# --- The return pages --------------------------------------------------------------------------


def test_the_return_pages_tell_the_truth_sooner_but_change_nothing(
    mailoutbox, shop, standin, customer_user
):
    variant = VariantFactory(stock=5)
    order, session_id = shop.opened(customer_user, variant)
    success = f"/api/orders/{order['id']}/success/?session_id={session_id}"
    before = shop.browser.get(success).json()
    assert before["data"] == {
        "order_id": order["id"],
        "status": "pending",
        "provider_says_paid": False,
    }

    standin.pay(session_id)  # the customer paid; the webhook is still on its way
    page = shop.browser.get(success).json()
    assert page["data"] == {
        "order_id": order["id"],
        "status": "pending",
        "provider_says_paid": True,
    }
    assert page["message"] == "Payment received; confirmation is on its way."
    cancel_page = shop.browser.get(f"/api/orders/{order['id']}/cancel/").json()
    assert cancel_page["data"]["status"] == "pending"
    assert status_of(order) == "pending"
    assert history(order) == []
    assert mailoutbox == []

    # Stripe goes down: the page still answers at once, with the "paid" it already heard
    # (a final answer, remembered), without asking again.
    standin.down = True
    asked = len(standin.requests_log)
    assert shop.browser.get(success).json()["data"]["provider_says_paid"] is True
    assert len(standin.requests_log) == asked
    standin.down = False

    shop.deliver_new()
    after = shop.browser.get(success).json()
    assert after["data"]["status"] == "processing"
    assert after["message"] == "Payment confirmed."


@pytest.mark.parametrize(
    "reservation_ttl",
    [
        pytest.param(30 * 60, id="default-30-min"),
        pytest.param(60 * 60, id="one-hour"),
    ],
)
def test_a_retry_after_a_lost_answer_gets_the_same_session(
    shop, standin, settings, customer_user, monkeypatch, reservation_ttl
):
    """The first open reached Stripe, but its answer was lost on the way back (a timeout); the
    customer opens the link again a few seconds later."""
    from django.utils import timezone as django_timezone

    from marketlink.payments.gateways.base import GatewayError
    from marketlink.payments.gateways.stripe import StripeGateway

    settings.MARKETLINK = stripe_settings(standin, RESERVATION_TTL=reservation_ttl)
    real_create, real_now = StripeGateway.create_checkout, django_timezone.now

    def answer_lost(self: StripeGateway, request: Any) -> Any:
        real_create(self, request)
        raise GatewayError("The payment provider failed to create a checkout session.")

    # Session ends are rounded up to 5-minute marks: the clock (booking included) starts 30 s
    # past one, so the retry 5 s later falls in the same 5 minutes, as almost every retry does.
    start = real_now().replace(second=30, microsecond=0)
    start -= timedelta(minutes=start.minute % 5)
    monkeypatch.setattr(django_timezone, "now", lambda: start)
    order = shop.book(customer_user, VariantFactory())
    monkeypatch.setattr(StripeGateway, "create_checkout", answer_lost)
    assert shop.open_link(order).status_code == 502
    monkeypatch.setattr(StripeGateway, "create_checkout", real_create)
    monkeypatch.setattr(django_timezone, "now", lambda: start + timedelta(seconds=5))

    response = shop.open_link(order)

    assert response.status_code == 303
    [session] = standin.sessions.values()
    assert response["Location"] == session["url"]


# --- Never two payable checkouts, never a payment kept twice -----------------------------------


def test_an_open_that_lost_a_race_closes_its_session(shop, standin, customer_user, monkeypatch):
    """Two opens made two sessions (different 5-minute marks): only one stays payable."""
    from marketlink.payments.gateways.stripe import StripeGateway

    variant = VariantFactory(stock=2)
    order = shop.book(customer_user, variant)
    real_create = StripeGateway.create_checkout

    def rival_opens_meanwhile(self: StripeGateway, request: Any) -> Any:
        monkeypatch.setattr(StripeGateway, "create_checkout", real_create)
        rival = real_create(
            self, request.__class__(**{**vars(request), "idempotency_key": "rival"})
        )
        RepairOrder.objects.filter(pk=order["id"]).update(
            checkout_session_id=rival.id, checkout_url=rival.url
        )
        return real_create(self, request)

    monkeypatch.setattr(StripeGateway, "create_checkout", rival_opens_meanwhile)
    response = shop.open_link(order)

    assert response.status_code == 303
    stored = RepairOrder.objects.get(pk=order["id"])
    statuses = {sid: s["status"] for sid, s in standin.sessions.items()}
    assert statuses[stored.checkout_session_id] == "open"
    assert sorted(statuses.values()) == ["expired", "open"]
    assert response["Location"] == standin.sessions[stored.checkout_session_id]["url"]


def test_the_success_page_does_not_wait_on_a_down_provider_at_every_reload(
    shop, standin, customer_user
):
    order, _ = shop.opened(customer_user, VariantFactory())
    success = f"/api/orders/{order['id']}/success/"
    standin.down = True
    asked = len(standin.requests_log)
    assert shop.browser.get(success).json()["data"]["provider_says_paid"] is False
    after_first = len(standin.requests_log)
    assert after_first > asked
    for _ in range(3):
        assert shop.browser.get(success).status_code == 200
    assert len(standin.requests_log) == after_first  # remembered for a few seconds
