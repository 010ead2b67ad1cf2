"""The Stripe stand-in, driven by the real stripe SDK over HTTP.

If these pass, the gateway's tests against the stand-in exercise the same SDK code paths (form
encoding, error mapping, retries, webhook verification) that production uses against Stripe.
"""

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from stripe_connect import standin_process
from webhook_receiver import Receiver, listening

from marketlink.testing.stripe_server import StandInError, StripeStandIn

API_KEY = "sk_test_standin"
SECRET = "whsec_standin"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with listening() as receiver:
        yield receiver


@pytest.fixture
def standin(receiver: Receiver) -> Iterator[StripeStandIn]:
    with StripeStandIn(webhook_url=receiver.url) as standin:
        yield standin


def make_client(
    standin: StripeStandIn, *, api_key: str = API_KEY, retries: int = 0, **kwargs: Any
) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": standin.api_base},
        max_network_retries=retries,
        **kwargs,
    )


@pytest.fixture
def client(standin: StripeStandIn) -> stripe.StripeClient:
    return make_client(standin)


def session_params(**overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "mode": "payment",
        "line_items": [
            {
                "quantity": 2,
                "price_data": {
                    "currency": "eur",
                    "unit_amount": 1999,
                    "product_data": {"name": "Boat tour"},
                },
            }
        ],
        "metadata": {"order_id": "ord_1"},
        "payment_intent_data": {"metadata": {"order_id": "ord_1"}},
        "client_reference_id": "ord_1",
        "success_url": "https://shop.example/paid?session={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.example/cart",
        "expires_at": int(time.time()) + 3600,
    }
    params.update(overrides)
    return params


def create_session(client: stripe.StripeClient, **overrides: Any) -> stripe.checkout.Session:
    return client.v1.checkout.sessions.create(params=session_params(**overrides))  # type: ignore[arg-type]


def paid_intent(standin: StripeStandIn, client: stripe.StripeClient) -> str:
    intent_id: str = standin.pay(create_session(client).id)["id"]
    return intent_id


def test_session_create_retrieve_expire(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    session = create_session(client, customer_email="ada@example.com")

    assert session.id.startswith("cs_test_")
    assert session.url == f"{standin.api_base}/checkout/{session.id}"
    assert (session.status, session.payment_status) == ("open", "unpaid")
    assert (session.amount_total, session.currency) == (3998, "eur")
    assert session.metadata is not None
    assert session.metadata.to_dict() == {"order_id": "ord_1"}
    assert session.client_reference_id == "ord_1"
    assert session.customer_email == "ada@example.com"
    assert session.payment_intent is None
    sent = standin.requests_log[-1]
    assert sent.params["line_items"][0]["price_data"]["unit_amount"] == "1999"
    assert sent.params["payment_intent_data"] == {"metadata": {"order_id": "ord_1"}}

    fetched = client.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items"]})
    assert fetched.line_items is not None
    assert fetched.line_items.data[0].description == "Boat tour"

    expired = client.v1.checkout.sessions.expire(session.id)
    assert (expired.status, expired.url) == ("expired", None)
    assert [event["type"] for event in standin.events] == ["checkout.session.expired"]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.checkout.sessions.expire(session.id)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")


@pytest.mark.parametrize("offset", [29 * 60, 24 * 3600 + 60])
def test_expires_at_out_of_range_is_refused(
    standin: StripeStandIn, client: stripe.StripeClient, offset: int
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        create_session(client, expires_at=int(time.time()) + offset)

    assert refused.value.param == "expires_at"
    assert standin.sessions == {}


def test_unknown_and_missing_parameters_are_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        create_session(client, shiping_address_collection={"allowed_countries": ["DE"]})
    assert (unknown.value.param, unknown.value.code) == (
        "shiping_address_collection",
        "parameter_unknown",
    )

    item = {"price_data": {"currency": "eur", "unit_amount": 5, "product_data": {"name": "x"}}}
    with pytest.raises(stripe.InvalidRequestError) as missing:
        create_session(client, line_items=[item])
    assert missing.value.param == "line_items[0][quantity]"


def test_wrong_api_key_is_an_authentication_error(standin: StripeStandIn) -> None:
    with pytest.raises(stripe.AuthenticationError):
        create_session(make_client(standin, api_key="sk_test_wrong"))

    assert standin.requests_log[-1].status == 401
    assert standin.sessions == {}


def test_idempotency_key_replays_or_refuses(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    params = session_params()
    first = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "k1"})  # type: ignore[arg-type]
    again = client.v1.checkout.sessions.create(params=params, options={"idempotency_key": "k1"})  # type: ignore[arg-type]

    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert len(standin.sessions) == 1
    create_session(client, client_reference_id="other")  # the SDK's own fresh key: accepted
    with pytest.raises(stripe.IdempotencyError):
        client.v1.checkout.sessions.create(
            params=session_params(client_reference_id="other"),  # type: ignore[arg-type]
            options={"idempotency_key": "k1"},
        )
    assert len(standin.sessions) == 2


def test_pay_creates_intent_and_emits_signed_events(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    session = create_session(client)

    standin.pay(session.id)

    paid = client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert isinstance(paid.payment_intent, str)
    intent = client.v1.payment_intents.retrieve(
        paid.payment_intent, params={"expand": ["latest_charge"]}
    )
    assert (intent.status, intent.amount, intent.currency) == ("succeeded", 3998, "eur")
    assert intent.metadata.to_dict() == {"order_id": "ord_1"}
    assert isinstance(intent.latest_charge, stripe.Charge)
    assert intent.latest_charge.id.startswith("ch_")

    events = standin.events
    assert [event["type"] for event in events] == [
        "checkout.session.completed",
        "payment_intent.succeeded",
    ]
    assert events[0]["data"]["object"]["payment_status"] == "paid"
    payload = json.dumps(events[0]).encode()
    verified = stripe.Webhook.construct_event(payload, standin.sign(payload), SECRET)
    assert verified.id == events[0]["id"]
    assert client.v1.events.retrieve(events[1]["id"]).data.object["id"] == intent.id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, standin.sign(payload), "whsec_other")
    stale = standin.sign(payload, timestamp=int(time.time()) - 600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, stale, SECRET)


def test_events_are_delivered_signed_to_the_webhook_url(
    standin: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    standin.pay(create_session(client).id)

    assert receiver.types() == ["checkout.session.completed", "payment_intent.succeeded"]
    for signature, body in receiver.received:
        assert stripe.Webhook.construct_event(body, signature, SECRET).type in receiver.types()
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(body, signature, "whsec_other")
    assert [delivery.status for delivery in standin.deliveries] == [200, 200]

    receiver.status = 500
    assert standin.redeliver(standin.events[0]["id"]) == 500
    assert standin.deliver(standin.events[0], url="http://127.0.0.1:9/nobody") == 0
    assert [delivery.status for delivery in standin.deliveries][2:] == [500, 0]
    assert len(receiver.received) == 3


def test_refunds_update_the_charge_and_enforce_the_remaining_amount(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent_id = paid_intent(standin, client)

    refund = client.v1.refunds.create(
        params={"payment_intent": intent_id, "amount": 1000, "reason": "requested_by_customer"}
    )

    assert (refund.status, refund.amount, refund.payment_intent) == ("succeeded", 1000, intent_id)
    assert client.v1.refunds.retrieve(refund.id).amount == 1000
    refunded = [event for event in standin.events if event["type"] == "charge.refunded"]
    assert refunded[0]["data"]["object"]["amount_refunded"] == 1000
    assert refunded[0]["data"]["object"]["refunded"] is False
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 2999})
    assert (too_much.value.param, too_much.value.code) == ("amount", "amount_too_large")

    rest = standin.refund(intent_id)

    assert rest["amount"] == 2998
    charge = client.v1.charges.retrieve(standin.payment_intents[intent_id]["latest_charge"])
    assert (charge.amount_refunded, charge.refunded) == (3998, True)
    with pytest.raises(stripe.InvalidRequestError) as done:
        client.v1.refunds.create(params={"payment_intent": intent_id})
    assert done.value.code == "charge_already_refunded"
    assert len(standin.refunds) == 2


def test_refunds_are_listed_by_payment_in_pages_and_a_charge_expands_ten(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent_id, other_id = paid_intent(standin, client), paid_intent(standin, client)
    newest_first = [standin.refund(intent_id, 100)["id"] for _ in range(12)][::-1]
    standin.refund(other_id, 100)

    def listed(**params: Any) -> stripe.ListObject[stripe.Refund]:
        return client.v1.refunds.list(params={"payment_intent": intent_id, **params})  # type: ignore[arg-type]

    first = listed(limit=5)
    assert (first.url, [r.id for r in first.data], first.has_more) == (
        "/v1/refunds",
        newest_first[:5],
        True,
    )
    rest = listed(limit=10, starting_after=newest_first[4])
    assert ([r.id for r in rest.data], rest.has_more) == (newest_first[5:], False)
    assert [r.id for r in listed()] == newest_first[:10]  # default limit 10
    assert [r.id for r in listed(limit=5).auto_paging_iter()] == newest_first
    charge_id = standin.payment_intents[intent_id]["latest_charge"]
    assert [r.id for r in client.v1.refunds.list(params={"charge": charge_id}).data] == (
        newest_first[:10]
    )
    assert len(client.v1.refunds.list(params={"limit": 100}).data) == 13

    intent = client.v1.payment_intents.retrieve(
        intent_id, params={"expand": ["latest_charge.refunds"]}
    )
    expanded = intent.to_dict()["latest_charge"]["refunds"]
    assert [r["id"] for r in expanded["data"]] == newest_first[:10]
    assert (expanded["has_more"], expanded["url"]) == (True, f"/v1/charges/{charge_id}/refunds")


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"payment_intent": "pi_nope"}, "payment_intent"),
        ({"charge": "ch_nope"}, "charge"),
        ({"starting_after": "re_nope"}, "starting_after"),
        ({"limit": 101}, "limit"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_refund_list_parameters_are_refused(
    client: stripe.StripeClient, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.refunds.list(params=params)  # type: ignore[arg-type]

    assert refused.value.param == param


def test_async_payment_succeeds_later(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    session = create_session(client)

    intent = standin.pay(session.id, async_payment=True)

    assert intent["status"] == "processing"
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "unpaid"
    standin.succeed_async(session.id)
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert client.v1.payment_intents.retrieve(intent["id"]).status == "succeeded"
    assert [
        (event["type"], event["data"]["object"].get("payment_status")) for event in standin.events
    ] == [
        ("checkout.session.completed", "unpaid"),
        ("checkout.session.async_payment_succeeded", "paid"),
        ("payment_intent.succeeded", None),
    ]


def test_async_payment_fails_later(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    session = create_session(client)
    intent = standin.pay(session.id, async_payment=True)

    standin.fail_async(session.id)

    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "unpaid"
    assert client.v1.payment_intents.retrieve(intent["id"]).status == "requires_payment_method"
    assert [event["type"] for event in standin.events][1:] == [
        "checkout.session.async_payment_failed",
        "payment_intent.payment_failed",
    ]
    with pytest.raises(StandInError, match="no payment in flight"):
        standin.succeed_async(session.id)


def test_declined_card_keeps_the_session_open(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    session = create_session(client)

    declined = standin.fail(session.id)

    assert declined["last_payment_error"]["code"] == "card_declined"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert standin.pay(session.id)["id"] == declined["id"]
    assert [event["type"] for event in standin.events] == [
        "payment_intent.payment_failed",
        "checkout.session.completed",
        "payment_intent.succeeded",
    ]


def test_fail_next_answers_with_an_api_error(standin: StripeStandIn) -> None:
    standin.fail_next(1, status=502)
    with pytest.raises(stripe.APIError) as failed:
        create_session(make_client(standin))
    assert failed.value.http_status == 502
    assert standin.sessions == {}

    standin.fail_next(1)
    session = create_session(make_client(standin, retries=1))

    attempts = [request for request in standin.requests_log if request.method == "POST"][1:]
    assert [request.status for request in attempts] == [500, 200]
    assert attempts[0].idempotency_key == attempts[1].idempotency_key
    assert list(standin.sessions) == [session.id]


def test_latency_delays_answers(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    session = create_session(client)
    standin.latency = 0.3

    started = time.monotonic()
    client.v1.checkout.sessions.retrieve(session.id)
    assert time.monotonic() - started >= 0.3

    impatient = make_client(standin, http_client=stripe.RequestsClient(timeout=0.1))
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.checkout.sessions.retrieve(session.id)


def test_down_and_stopped(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    session = create_session(client)

    standin.down = True
    with pytest.raises(stripe.APIError) as unavailable:
        client.v1.checkout.sessions.retrieve(session.id)
    assert unavailable.value.http_status == 503
    standin.down = False

    standin.stop()
    with pytest.raises(stripe.APIConnectionError):
        client.v1.checkout.sessions.retrieve(session.id)
    standin.start()
    assert client.v1.checkout.sessions.retrieve(session.id).id == session.id


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_form(url: str) -> urllib.error.HTTPError:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    with pytest.raises(urllib.error.HTTPError) as answer:
        opener.open(urllib.request.Request(url, data=b"", method="POST"))
    answer.value.close()
    return answer.value


def test_hosted_page_pay_redirects_to_success_url(
    standin: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    session = create_session(client)
    assert session.url is not None
    with urllib.request.urlopen(session.url) as page:
        assert f'action="/checkout/{session.id}/pay"' in page.read().decode()

    answer = post_form(f"{session.url}/pay")

    assert answer.code == 303
    assert answer.headers["Location"] == f"https://shop.example/paid?session={session.id}"
    assert client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    assert receiver.types() == ["checkout.session.completed", "payment_intent.succeeded"]


def test_hosted_page_decline_redirects_to_cancel_url(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    session = create_session(client)

    answer = post_form(f"{standin.api_base}/checkout/{session.id}/decline")

    assert (answer.code, answer.headers["Location"]) == (303, "https://shop.example/cart")
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert [event["type"] for event in standin.events] == ["payment_intent.payment_failed"]


def test_module_level_configuration(
    standin: StripeStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe, "api_key", API_KEY)
    monkeypatch.setattr(stripe, "api_base", standin.api_base)
    monkeypatch.setattr(stripe, "max_network_retries", 0)

    session = stripe.checkout.Session.create(**session_params())

    assert stripe.checkout.Session.retrieve(session.id).amount_total == 3998


def test_curl_style_form_encoding(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    session = create_session(client)
    request = urllib.request.Request(
        f"{standin.api_base}/v1/checkout/sessions/{session.id}?expand[]=line_items",
        headers={"Authorization": f"Bearer {API_KEY}"},
    )

    with urllib.request.urlopen(request) as answer:
        body = json.load(answer)

    assert body["line_items"]["data"][0]["quantity"] == 2


def test_command_line_entry_point() -> None:
    with standin_process() as api_base:
        client = stripe.StripeClient(API_KEY, base_addresses={"api": api_base})
        assert create_session(client).status == "open"


# --- The Events API, the 30-day window, lost deliveries, balance and account -------------------

DAY = 24 * 60 * 60


def listed(client: stripe.StripeClient, **params: Any) -> stripe.ListObject[stripe.Event]:
    return client.v1.events.list(params=params)  # type: ignore[arg-type]


def ids(page: stripe.ListObject[stripe.Event]) -> list[str]:
    return [event.id for event in page.data]


def test_events_are_listed_newest_first_in_pages(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    for _ in range(3):
        standin.pay(create_session(client).id)
    newest_first = [event["id"] for event in reversed(standin.events)]

    first = listed(client, limit=4)
    assert (first.object, first.url, first.has_more) == ("list", "/v1/events", True)
    assert ids(first) == newest_first[:4]
    rest = listed(client, limit=4, starting_after=newest_first[3])
    assert (ids(rest), rest.has_more) == (newest_first[4:], False)
    before = listed(client, limit=2, ending_before=newest_first[4])
    assert (ids(before), before.has_more) == (newest_first[2:4], True)
    assert ids(listed(client)) == newest_first  # default limit 10
    assert [event.id for event in listed(client, limit=1).auto_paging_iter()] == newest_first


def test_events_are_filtered_by_type_and_creation_time(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    early, later = create_session(client), create_session(client)
    standin.clock_offset = -2 * DAY
    standin.pay(early.id)
    standin.clock_offset = 0
    standin.expire(later.id)
    completed, succeeded, expired = standin.events
    now = int(time.time())

    assert ids(listed(client, type="payment_intent.succeeded")) == [succeeded["id"]]
    assert ids(listed(client, type="checkout.session.*")) == [expired["id"], completed["id"]]
    both = listed(client, types=["checkout.session.expired", "payment_intent.succeeded"])
    assert ids(both) == [expired["id"], succeeded["id"]]
    assert ids(listed(client, created={"gte": now - DAY})) == [expired["id"]]
    assert ids(listed(client, created={"lt": now - DAY})) == [succeeded["id"], completed["id"]]
    assert ids(listed(client, created={"gt": now + 60})) == []
    assert ids(listed(client, created=completed["created"])) == [
        succeeded["id"],
        completed["id"],
    ]


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"created": {"after": 1}}, "created[after]"),
        ({"delivery_success": "maybe"}, "delivery_success"),
        ({"starting_after": "evt_nope"}, "starting_after"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_event_list_parameters_are_refused(
    client: stripe.StripeClient, params: dict[str, Any], param: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as refused:
        listed(client, **params)

    assert refused.value.param == param


def test_type_and_types_together_are_refused(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="only specify one"):
        listed(client, type="charge.refunded", types=["charge.refunded"])


def test_events_older_than_30_days_are_neither_listed_nor_retrieved(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    old, recent = create_session(client), create_session(client)
    standin.clock_offset = -31 * DAY
    standin.expire(old.id)
    standin.clock_offset = -29 * DAY
    standin.expire(recent.id)
    standin.clock_offset = 0
    gone, kept = standin.events

    assert ids(listed(client)) == [kept["id"]]
    assert ids(listed(client, created={"gte": 0})) == [kept["id"]]
    assert client.v1.events.retrieve(kept["id"]).id == kept["id"]
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.events.retrieve(gone["id"])
    assert missing.value.http_status == 404
    assert gone["created"] <= time.time() - 31 * DAY  # kept by the stand-in, out of the API's reach


def test_dropped_deliveries_are_kept_and_listed_as_undelivered(
    standin: StripeStandIn, client: stripe.StripeClient, receiver: Receiver
) -> None:
    standin.pay(create_session(client).id)
    delivered = [event["id"] for event in reversed(standin.events)]

    standin.drop_deliveries = True
    standin.pay(create_session(client).id)
    standin.drop_deliveries = False
    lost = [event["id"] for event in reversed(standin.events)][:2]

    assert sorted(receiver.ids()) == sorted(delivered)
    assert [(d.status, d.dropped) for d in standin.deliveries] == [
        (200, False),
        (200, False),
        (0, True),
        (0, True),
    ]
    assert ids(listed(client, delivery_success=False)) == lost
    assert ids(listed(client, delivery_success=True)) == delivered
    receiver.status = 500
    standin.redeliver(lost[0])
    assert ids(listed(client, delivery_success=False)) == lost
    receiver.status = 200
    standin.redeliver(lost[0])
    assert ids(listed(client, delivery_success=False)) == lost[1:]


def test_balance_and_account_answer_a_valid_key(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    intent = paid_intent(standin, client)
    standin.refund(intent, 998)

    balance = client.v1.balance.retrieve()
    assert balance.livemode is False
    assert [(funds.amount, funds.currency) for funds in balance.available] == [(3000, "eur")]
    account = client.v1.accounts.retrieve_current()
    assert account.id.startswith("acct_")
    assert account.id == client.v1.accounts.retrieve_current().id


def test_a_live_key_is_live() -> None:
    with StripeStandIn(api_key="sk_live_standin") as live:
        balance = make_client(live, api_key="sk_live_standin").v1.balance.retrieve()

    assert balance.livemode is True


@pytest.mark.parametrize("path", ["/v1/balance", "/v1/account", "/v1/events"])
def test_a_bad_key_is_a_401_in_stripes_shape(standin: StripeStandIn, path: str) -> None:
    request = urllib.request.Request(
        f"{standin.api_base}{path}", headers={"Authorization": "Bearer sk_test_wrong_key"}
    )

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)

    assert refused.value.code == 401
    error = json.load(refused.value)["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "Invalid API Key provided: sk_test_****_key"
    with pytest.raises(stripe.AuthenticationError):
        make_client(standin, api_key="sk_test_wrong_key").v1.balance.retrieve()
