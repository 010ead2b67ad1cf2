"""What operators see: the structured log of a whole run (and nothing secret in it), the metrics,
the pinned Stripe API version and webhook secret rotation, against the Stripe stand-in."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from stripe_shop import WEBHOOK, Shop, status_of, stripe_settings

from marketlink.logs import JsonFormatter
from marketlink.payments.gateways.stripe import STRIPE_API_VERSION
from marketlink.testing.factories import VariantFactory, VendorProfileFactory
from marketlink.testing.stripe_server import API_VERSION, StripeStandIn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]

PASSWORD = "Correct-Horse-Battery-9"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every logger at DEBUG, written as marketlink.logs.JsonFormatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root, ours = logging.getLogger(), logging.getLogger("marketlink")
    levels = root.level, ours.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    ours.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(levels[0])
    ours.setLevel(levels[1])


def lines_of(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == name]


def test_a_full_run_logs_each_step_with_its_ids_and_no_secret(
    shop: Shop, standin: StripeStandIn, api, settings, json_log
):
    settings.MARKETLINK = stripe_settings(standin, STRIPE_WEBHOOK_SECRET_PREVIOUS="whsec_old_one")
    vendor = VendorProfileFactory()
    variant = VariantFactory(stock=2, service__vendor=vendor)
    email = "ada@example.com"
    registered = api.post(
        "/users/register/", {"email": email, "password": PASSWORD, "role": "CUSTOMER"}
    )
    assert registered.status_code == 201
    login = api.post("/users/login/", {"email": email, "password": PASSWORD}).json()["data"]
    access, refresh = login["tokens"]["access"], login["tokens"]["refresh"]
    vendor_login = api.post("/users/login/", {"email": vendor.user.email, "password": "x"})
    assert vendor_login.status_code == 401  # a wrong password is logged as nothing but a 401

    order = api.post("/orders/", {"variant_id": str(variant.id)}, token=access).json()["data"]
    assert shop.open_link(order).status_code == 303
    standin.pay(shop.session_id(order))
    assert {status for _, status in shop.deliver_new()} == {200}
    assert status_of(order) == "processing"  # the invoice went out
    assert shop.deliver_new() == []
    forged = b'{"id": "evt_forged", "type": "checkout.session.completed"}'
    refused = shop.browser.post(
        WEBHOOK,
        forged,
        content_type="application/json",
        headers={"Stripe-Signature": standin.sign(forged, secret="whsec_attacker")},
    )
    assert refused.status_code == 400
    refund = api.post(f"/orders/{order['id']}/refund/", user=vendor.user)
    assert refund.json()["data"]["status"] == "refunded"
    sold_out_variant = VariantFactory(stock=0)
    sold_out = api.post("/orders/", {"variant_id": str(sold_out_variant.id)}, token=access)
    assert sold_out.status_code == 409

    text = json_log.getvalue()
    never = {
        "password": PASSWORD,
        "access token": access,
        "refresh token": refresh,
        "API key": standin.api_key,
        "webhook secret": standin.webhook_secret,
        "previous webhook secret": "whsec_old_one",
        "payment link": order["payment_url"].rstrip("/").rsplit("/", 1)[-1],
        "Django SECRET_KEY": settings.SECRET_KEY,
        "card number": "4242424242424242",
    }
    leaked = {name for name, value in never.items() if value in text}
    assert not leaked, f"the log holds the {', '.join(sorted(leaked))}"
    lines = lines_of(json_log)
    [taken] = events(lines, "reservation.taken")
    assert (taken["order_id"], taken["variant_id"]) == (order["id"], str(variant.id))
    assert events(lines, "reservation.sold_out")[0]["variant_id"] == str(sold_out_variant.id)
    changes = [(e["from_status"], e["to_status"]) for e in events(lines, "order.status_changed")]
    assert changes == [("pending", "paid"), ("paid", "processing"), ("processing", "refunded")]
    assert {e["order_id"] for e in events(lines, "order.status_changed")} == {order["id"]}
    received = events(lines, "payment_event.received")
    assert received
    assert all(e["event_id"].startswith("evt_") for e in received)
    assert {e["order_id"] for e in events(lines, "payment_event.processed")} == {order["id"]}
    [invoice] = events(lines, "invoice.sent")
    assert invoice["order_id"] == order["id"]
    assert events(lines, "refund.succeeded")[0]["order_id"] == order["id"]
    [forgery] = events(lines, "webhook.signature_invalid")
    assert forgery["level"] == "WARNING"
    assert "No signatures found" in forgery["message"]


def test_the_formatter_redacts_fields_named_like_secrets(json_log):
    logging.getLogger("host.views").info(
        "login", extra={"event": "host.login", "password": PASSWORD, "api_key": "sk_live_x"}
    )
    [line] = lines_of(json_log)
    assert (line["password"], line["api_key"]) == ("[redacted]", "[redacted]")
    assert PASSWORD not in json_log.getvalue()


# --- Metrics -----------------------------------------------------------------------------------


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_bookings_sold_out_answers_and_webhook_outcomes_are_counted(
    shop: Shop, standin: StripeStandIn, customer_user, client
):
    before = {
        "taken": sample("marketlink_bookings_total", outcome="taken"),
        "sold_out": sample("marketlink_bookings_total", outcome="sold_out"),
        "processed": sample("marketlink_webhook_events_total", outcome="processed"),
        "duplicate": sample("marketlink_webhook_events_total", outcome="duplicate"),
        "invalid": sample("marketlink_webhook_events_total", outcome="invalid_signature"),
    }
    variant = VariantFactory(stock=1)
    _order, session_id = shop.opened(customer_user, variant)
    assert (
        shop.api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user).status_code
        == 409
    )
    standin.pay(session_id)
    [first, *_] = shop.undelivered()
    shop.deliver_new()
    assert shop.deliver(first).status_code == 200  # Stripe delivered it twice
    bad = shop.browser.post(
        WEBHOOK, b"{}", content_type="application/json", headers={"Stripe-Signature": "t=1,v1=0"}
    )
    assert bad.status_code == 400

    assert sample("marketlink_bookings_total", outcome="taken") == before["taken"] + 1
    assert sample("marketlink_bookings_total", outcome="sold_out") == before["sold_out"] + 1
    assert sample("marketlink_webhook_events_total", outcome="processed") > before["processed"]
    assert sample("marketlink_webhook_events_total", outcome="duplicate") == (
        before["duplicate"] + 1
    )
    assert sample("marketlink_webhook_events_total", outcome="invalid_signature") == (
        before["invalid"] + 1
    )
    exported = client.get("/metrics")
    assert exported.status_code == 200
    assert b'marketlink_bookings_total{outcome="taken"}' in exported.content


def test_marketlink_runs_without_prometheus_client(monkeypatch, customer_user, api, client):
    """The extra is optional: without it nothing is counted, nothing fails, and the view says
    what to install."""
    import sys

    from marketlink import metrics

    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails, as uninstalled
    monkeypatch.setattr(metrics, "_metrics", metrics._UNSET)
    variant = VariantFactory(stock=1)
    assert (
        api.post("/orders/", {"variant_id": str(variant.id)}, user=customer_user).status_code == 201
    )
    assert metrics._metrics is None
    answer = client.get("/metrics")
    assert answer.status_code == 501
    assert b"marketlink[metrics]" in answer.content


# --- The Stripe API version and webhook secret rotation -----------------------------------------


def test_every_stripe_call_asks_for_the_pinned_api_version(
    shop: Shop, standin: StripeStandIn, customer_user, vendor_user, api
):
    standin.required_version = STRIPE_API_VERSION
    variant = VariantFactory(stock=2, service__vendor=vendor_user.marketlink_vendor)
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id)
    shop.deliver_new()
    assert api.post(f"/orders/{order['id']}/refund/", user=vendor_user).status_code == 200
    assert STRIPE_API_VERSION == API_VERSION  # the version the stand-in's events are written in
    assert standin.requests_log
    assert {(r.stripe_version, r.status) for r in standin.requests_log} == {
        (STRIPE_API_VERSION, 200)
    }


def test_the_stand_in_refuses_a_client_that_asks_for_another_version(
    shop: Shop, standin: StripeStandIn, customer_user
):
    standin.required_version = "2020-08-27"
    order = shop.book(customer_user, VariantFactory(stock=1))
    assert shop.open_link(order).status_code == 502
    assert standin.requests_log[-1].status == 400


def signed_payment(shop: Shop, customer: Any, secret: str) -> Any:
    order, session_id = shop.opened(customer, VariantFactory(stock=1))
    shop.standin.pay(session_id)
    [event, *_] = shop.undelivered("checkout.session.completed")
    payload = json.dumps(event).encode()
    with shop.on_commit(execute=True):
        answer = shop.browser.post(
            WEBHOOK,
            payload,
            content_type="application/json",
            headers={"Stripe-Signature": shop.standin.sign(payload, secret=secret)},
        )
    return order, answer


@pytest.mark.parametrize("signed_with", ["whsec_new_one", "whsec_old_one"])
def test_during_a_rotation_events_signed_with_either_secret_are_accepted(
    shop: Shop, standin: StripeStandIn, settings, customer_user, signed_with
):
    settings.MARKETLINK = stripe_settings(
        standin,
        STRIPE_WEBHOOK_SECRET="whsec_new_one",
        STRIPE_WEBHOOK_SECRET_PREVIOUS="whsec_old_one",
    )
    order, answer = signed_payment(shop, customer_user, signed_with)
    assert answer.status_code == 200
    assert status_of(order) == "processing"


def test_after_the_rotation_the_old_secret_is_refused(
    shop: Shop, standin: StripeStandIn, settings, customer_user
):
    settings.MARKETLINK = stripe_settings(standin, STRIPE_WEBHOOK_SECRET="whsec_new_one")
    order, answer = signed_payment(shop, customer_user, "whsec_old_one")
    assert answer.status_code == 400
    assert "No signatures found" in answer.json()["message"]
    assert status_of(order) == "pending"
