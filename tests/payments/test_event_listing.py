"""Reading events back from the provider when webhook deliveries were lost: ``list_events`` and
``check_credentials`` through the real stripe SDK against the Stripe stand-in, and the dummy
gateway's answers from its own store."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

import pytest
import stripe
from django.test import Client
from django.utils import timezone
from stripe_shop import api_calls, status_of
from webhook_receiver import listening

from marketlink.exceptions import InvalidInput
from marketlink.payments.checkout import checkout_open
from marketlink.payments.gateways.base import (
    EventKind,
    EventsOutOfReach,
    GatewayError,
)
from marketlink.payments.gateways.dummy import DummyGateway
from marketlink.payments.gateways.stripe import StripeGateway, parse_event
from marketlink.payments.models import DummyEvent, PaymentEvent
from marketlink.payments.webhooks import fetched_event_accept
from marketlink.testing.factories import VariantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]

DAY = 24 * 60 * 60


def sdk(standin: Any) -> stripe.StripeClient:
    return stripe.StripeClient(
        standin.api_key, base_addresses={"api": standin.api_base}, max_network_retries=0
    )


def open_session(client: stripe.StripeClient, order_id: str = "ord_1") -> str:
    params: Any = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 4000,
                    "product_data": {"name": "Tune-up"},
                },
            }
        ],
        "metadata": {"order_id": order_id},
        "payment_intent_data": {"metadata": {"order_id": order_id}},
        "expires_at": int(time.time()) + 3600,
    }
    return str(client.v1.checkout.sessions.create(params=params).id)


def an_hour_ago() -> Any:
    return timezone.now() - timedelta(hours=1)


def event_listings(standin: Any) -> list[dict[str, Any]]:
    return [r.params for r in standin.requests_log if r.path == "/v1/events"]


def test_every_page_is_read_newest_first_each_event_as_a_delivery_would_carry_it(standin):
    client = sdk(standin)
    for n in range(51):  # 102 events: two pages of 100
        standin.pay(open_session(client, order_id=f"ord_{n}"))

    fetched = list(StripeGateway().list_events(since=an_hour_ago()))

    emitted = list(reversed(standin.events))
    assert [event.event_id for event in fetched] == [event["id"] for event in emitted]
    assert len(event_listings(standin)) == 2
    for event, original in zip(fetched, emitted, strict=True):
        assert event.payload == original
        assert json.loads(json.dumps(event.payload)) == original  # storable as JSON
        assert event.parsed == parse_event(original)
    newest = fetched[0].parsed
    assert (newest.kind, newest.order_ref, newest.amount_minor) == (
        EventKind.PAYMENT_SUCCEEDED,
        "ord_50",
        4000,
    )


def test_kinds_are_asked_for_by_stripes_type_names(standin):
    client = sdk(standin)
    standin.pay(open_session(client))
    standin.expire(open_session(client))
    gateway = StripeGateway()

    paid = list(gateway.list_events(since=an_hour_ago(), kinds={EventKind.PAYMENT_SUCCEEDED}))
    assert [event.parsed.provider_type for event in paid] == ["payment_intent.succeeded"]
    assert event_listings(standin)[-1]["types"] == ["payment_intent.succeeded"]

    # "other" has no Stripe type names: every type is listed and the rest sorted out here.
    either = {EventKind.OTHER, EventKind.CHECKOUT_EXPIRED}
    expired = list(gateway.list_events(since=an_hour_ago(), kinds=either))
    assert [event.parsed.provider_type for event in expired] == ["checkout.session.expired"]
    assert "types" not in event_listings(standin)[-1]


def test_events_before_since_are_left_out(standin):
    client = sdk(standin)
    old, new = open_session(client), open_session(client)
    standin.clock_offset = -2 * DAY
    standin.expire(old)
    standin.clock_offset = 0
    standin.expire(new)

    fetched = list(StripeGateway().list_events(since=timezone.now() - timedelta(days=1)))

    assert [event.parsed.session_id for event in fetched] == [new]
    assert len(list(StripeGateway().list_events(since=timezone.now() - timedelta(days=3)))) == 2


def test_a_since_older_than_30_days_is_refused_before_stripe_is_asked(standin):
    gateway = StripeGateway()

    with pytest.raises(EventsOutOfReach, match="30 days") as refused:
        gateway.list_events(since=timezone.now() - timedelta(days=31))

    assert isinstance(refused.value, InvalidInput)
    assert api_calls(standin) == []
    assert list(gateway.list_events(since=timezone.now() - timedelta(days=29))) == []


def test_undelivered_only_lists_the_events_whose_deliveries_were_lost(standin):
    client = sdk(standin)
    with listening() as receiver:
        standin.webhook_url, standin.auto_deliver = receiver.url, True
        standin.pay(open_session(client, order_id="delivered"))
        standin.drop_deliveries = True
        standin.pay(open_session(client, order_id="lost"))
        standin.drop_deliveries = False

        lost = list(StripeGateway().list_events(since=an_hour_ago(), undelivered_only=True))

    assert {event.parsed.order_ref for event in lost} == {"lost"}
    assert [event.parsed.provider_type for event in lost] == [
        "payment_intent.succeeded",
        "checkout.session.completed",
    ]
    assert event_listings(standin)[-1]["delivery_success"] == "false"
    assert len(receiver.received) == 2


def test_an_unreachable_stripe_is_a_gateway_error(standin):
    standin.down = True

    with pytest.raises(GatewayError):
        StripeGateway().list_events(since=an_hour_ago())


def test_a_lost_payment_fetched_back_pays_its_order_once(
    shop, standin, customer_user, django_capture_on_commit_callbacks
):
    order, session_id = shop.opened(customer_user, VariantFactory(stock=2))
    standin.pay(session_id)  # the stand-in delivers nothing here: both events are lost
    assert status_of(order) == "pending"

    for _ in range(2):  # the second run finds both stored and processed: nothing changes
        for fetched in StripeGateway().list_events(since=an_hour_ago(), undelivered_only=True):
            with django_capture_on_commit_callbacks(execute=True):
                fetched_event_accept(fetched.payload)

    assert status_of(order) == "processing"  # paid, and the invoice task ran
    stored = {event.event_id: event for event in PaymentEvent.objects.all()}
    assert {e["id"]: e for e in standin.events} == {k: v.payload for k, v in stored.items()}
    assert {(event.status, event.attempts) for event in stored.values()} == {("processed", 1)}


def test_check_credentials_with_the_configured_key(standin, settings):
    assert StripeGateway().check_credentials() == (
        StripeGateway()
        .check_credentials()
        .__class__(ok=True, livemode=False, detail="Stripe accepts the test key.")
    )
    assert [call[1] for call in api_calls(standin)] == ["/v1/balance", "/v1/balance"]

    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_SECRET_KEY": "sk_test_revoked_1234"}
    refused = StripeGateway().check_credentials()
    assert (refused.ok, refused.livemode) == (False, None)
    assert "401" in refused.detail
    assert "1234" not in refused.detail

    standin.down = True
    with pytest.raises(GatewayError):
        StripeGateway().check_credentials()


# --- The dummy gateway -------------------------------------------------------------------------


def test_the_dummy_lists_the_events_it_emitted(order, dummy_gateway):
    url = checkout_open(order=order, base_url="http://testserver/")
    browser = Client()
    assert browser.post(url, {"action": "decline"}).status_code == 303
    assert browser.post(url, {"action": "pay"}).status_code == 303
    gateway = DummyGateway()

    fetched = list(gateway.list_events(since=an_hour_ago()))

    assert [event.parsed.provider_type for event in fetched] == [
        "checkout.session.completed",
        "payment_intent.payment_failed",
    ]
    stored = {event.event_id: event.payload for event in PaymentEvent.objects.all()}
    assert {event.event_id: event.payload for event in fetched} == stored
    assert fetched[0].parsed.order_ref == str(order.id)
    assert DummyEvent.objects.count() == 2
    completed = {EventKind.CHECKOUT_COMPLETED}
    assert [e.event_id for e in gateway.list_events(since=an_hour_ago(), kinds=completed)] == [
        fetched[0].event_id
    ]
    assert list(gateway.list_events(since=an_hour_ago(), undelivered_only=True)) == []
    assert list(gateway.list_events(since=timezone.now() + timedelta(minutes=1))) == []


def test_the_dummy_needs_no_key(dummy_gateway):
    check = DummyGateway().check_credentials()

    assert (check.ok, check.livemode) == (True, False)
