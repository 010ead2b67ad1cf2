"""The Stripe stand-in's Connect side, driven by the real stripe SDK over HTTP: Express accounts,
Account Links and the hosted onboarding page, login links, transfers and reversals, the Connect
webhook endpoint and the Stripe-Account header.

What these prove is what the payouts code will rely on: the SDK's requests are accepted in the
shapes Stripe documents, Stripe's refusals come back as the SDK's errors with Stripe's codes, and
each event reaches the endpoint it would reach at Stripe, signed with that endpoint's secret.
"""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from stripe_connect import API_KEY, make_client, new_account, paid_charge, standin_process
from webhook_receiver import Receiver, listening

from marketlink.testing.stripe_server import StripeStandIn

SECRET = "whsec_standin"
CONNECT_SECRET = "whsec_connect_standin"
LINK = {
    "type": "account_onboarding",
    "refresh_url": "https://shop.example/payouts/refresh",
    "return_url": "https://shop.example/payouts/done",
}


@pytest.fixture
def platform() -> Iterator[Receiver]:
    with listening() as receiver:
        yield receiver


@pytest.fixture
def connect() -> Iterator[Receiver]:
    with listening() as receiver:
        yield receiver


@pytest.fixture
def standin(platform: Receiver, connect: Receiver) -> Iterator[StripeStandIn]:
    with StripeStandIn(webhook_url=platform.url, connect_webhook_url=connect.url) as standin:
        yield standin


@pytest.fixture
def client(standin: StripeStandIn) -> stripe.StripeClient:
    return make_client(standin)


def ready_account(standin: StripeStandIn, client: stripe.StripeClient, **overrides: Any) -> str:
    account_id = new_account(client, **overrides).id
    standin.finish_onboarding(account_id)
    return account_id


def transfer(client: stripe.StripeClient, destination: str, **params: Any) -> stripe.Transfer:
    base = {"amount": 3000, "currency": "usd", "destination": destination}
    return client.v1.transfers.create(params={**base, **params})  # type: ignore[arg-type]


def refused(call: Any, error: type[stripe.StripeError] = stripe.InvalidRequestError) -> Any:
    with pytest.raises(error) as raised:
        call()
    return raised.value


# --- accounts ---------------------------------------------------------------------------------


def test_an_express_account_starts_unable_to_do_anything(client: stripe.StripeClient) -> None:
    account = new_account(client)

    assert account.id.startswith("acct_")
    assert (account.charges_enabled, account.payouts_enabled, account.details_submitted) == (
        False,
        False,
        False,
    )
    assert account.capabilities is not None
    assert account.capabilities.to_dict() == {"transfers": "inactive"}
    assert account.requirements is not None
    assert "external_account" in (account.requirements.currently_due or [])
    assert account.requirements.disabled_reason == "requirements.past_due"
    assert account.controller is not None
    assert account.controller.to_dict() == {
        "type": "application",
        "is_controller": True,
        "fees": {"payer": "application"},
        "losses": {"payments": "application"},
        "requirement_collection": "stripe",
        "stripe_dashboard": {"type": "express"},
    }
    assert (account.country, account.email, account.metadata.to_dict()) == (
        "US",
        "vendor@example.com",
        {"vendor_id": "42"},
    )
    assert account.tos_acceptance is not None
    assert account.tos_acceptance.service_agreement == "full"
    assert client.v1.accounts.retrieve(account.id).id == account.id


def test_the_legacy_express_type_is_accepted(client: stripe.StripeClient) -> None:
    account = client.v1.accounts.create(
        params={
            "type": "express",
            "country": "DE",
            "capabilities": {"transfers": {"requested": True}},
        }
    )

    assert account.type == "express"
    assert account.controller is not None
    assert account.controller.fees is not None
    assert account.controller.fees.payer == "application_express"
    assert account.default_currency == "eur"


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"country": "XX"}, "country"),
        ({"bussiness_type": "individual"}, "bussiness_type"),
        ({"type": "express"}, "type"),
        (
            {"controller": {"stripe_dashboard": {"type": "full"}}},
            "controller[stripe_dashboard][type]",
        ),
        (
            {
                "tos_acceptance": {"service_agreement": "recipient"},
                "capabilities": {"card_payments": {"requested": True}},
            },
            "tos_acceptance[service_agreement]",
        ),
    ],
)
def test_bad_account_parameters_are_refused(
    standin: StripeStandIn, client: stripe.StripeClient, params: dict[str, Any], param: str
) -> None:
    error = refused(lambda: new_account(client, **params))

    assert (error.http_status, error.param) == (400, param)
    assert standin.accounts == {}


def test_an_account_the_platform_cannot_reach_is_a_403(client: stripe.StripeClient) -> None:
    error = refused(lambda: client.v1.accounts.retrieve("acct_nobody"), stripe.PermissionError)

    assert "does not have access to account 'acct_nobody'" in error.user_message


# --- onboarding -------------------------------------------------------------------------------


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def open_page(url: str, *, post: bool = False) -> tuple[int, str, str | None]:
    """``(status, body, Location)`` of a hosted page, redirects not followed."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect())
    request = urllib.request.Request(
        url, data=b"" if post else None, method="POST" if post else "GET"
    )
    try:
        with opener.open(request) as answer:
            return answer.status, answer.read().decode(), None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode(), error.headers["Location"]


def test_the_onboarding_page_finishes_onboarding_and_tells_the_connect_endpoint(
    standin: StripeStandIn, client: stripe.StripeClient, platform: Receiver, connect: Receiver
) -> None:
    account_id = new_account(client).id
    link = client.v1.account_links.create(params={"account": account_id, **LINK})  # type: ignore[arg-type]
    assert (link.object, link.expires_at - link.created) == ("account_link", 300)

    status, body, _ = open_page(link.url)
    assert status == 200
    assert 'action="/connect/onboarding/' in body
    assert "/finish" in body
    assert open_page(f"{link.url}/finish", post=True)[::2] == (303, LINK["return_url"])

    account = client.v1.accounts.retrieve(account_id)
    assert (account.details_submitted, account.payouts_enabled) == (True, True)
    assert account.charges_enabled is False  # transfers only: no card_payments capability
    assert account.capabilities is not None
    assert account.capabilities.transfers == "active"
    assert account.requirements is not None
    assert account.requirements.currently_due == []
    assert connect.types() == ["capability.updated", "account.updated"]
    assert platform.received == []
    for signature, payload in connect.received:
        event = stripe.Webhook.construct_event(payload, signature, CONNECT_SECRET)
        assert event.account == account_id
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload, signature, SECRET)
    updated = json.loads(connect.received[1][1])
    assert updated["data"]["previous_attributes"]["payouts_enabled"] is False
    assert [d.status for d in standin.connect_deliveries] == [200, 200]
    # A link is single use: opened again, it sends the vendor to refresh_url for a new one.
    assert open_page(link.url)[::2] == (303, LINK["refresh_url"])


def test_leaving_the_onboarding_page_returns_without_onboarding(
    standin: StripeStandIn, client: stripe.StripeClient, connect: Receiver
) -> None:
    account_id = new_account(client).id
    link = client.v1.account_links.create(params={"account": account_id, **LINK})  # type: ignore[arg-type]
    open_page(link.url)

    assert open_page(f"{link.url}/leave", post=True)[::2] == (303, LINK["return_url"])
    assert client.v1.accounts.retrieve(account_id).details_submitted is False
    assert connect.received == []


def test_an_expired_link_sends_to_refresh_url(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    account_id = new_account(client).id
    link = client.v1.account_links.create(params={"account": account_id, **LINK})  # type: ignore[arg-type]

    standin.clock_offset = 301
    assert open_page(link.url)[::2] == (303, LINK["refresh_url"])


def test_account_link_parameters_are_checked(client: stripe.StripeClient) -> None:
    account_id = new_account(client).id

    bad_url = refused(
        lambda: client.v1.account_links.create(
            params={**LINK, "account": account_id, "return_url": "/payouts/{vendor_id}"}  # type: ignore[typeddict-item]
        )
    )
    assert bad_url.param == "return_url"
    update = refused(
        lambda: client.v1.account_links.create(
            params={**LINK, "account": account_id, "type": "account_update"}  # type: ignore[typeddict-item]
        )
    )
    assert update.param == "type"


def test_a_login_link_needs_a_finished_onboarding_and_opens_once(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    account_id = new_account(client).id
    assert refused(lambda: client.v1.accounts.login_links.create(account_id)).http_status == 400

    standin.finish_onboarding(account_id)
    login = client.v1.accounts.login_links.create(account_id)

    assert login.object == "login_link"
    status, body, _ = open_page(login.url)
    assert status == 200
    assert account_id in body
    assert open_page(login.url)[0] == 404


# --- transfers and reversals ------------------------------------------------------------------


def test_a_transfer_from_a_charge_is_listed_by_its_transfer_group(
    standin: StripeStandIn, client: stripe.StripeClient, platform: Receiver, connect: Receiver
) -> None:
    account_id, other_id = ready_account(standin, client), ready_account(standin, client)
    charge_id = paid_charge(standin, client)
    assert client.v1.charges.retrieve(charge_id).transfer_group == "order_7"
    connect.received.clear()

    sent = transfer(
        client,
        account_id,
        transfer_group="order_7",
        source_transaction=charge_id,
        metadata={"order_id": "7"},
    )

    assert sent.id.startswith("tr_")
    assert (sent.amount, sent.amount_reversed, sent.reversed) == (3000, 0, False)
    assert (sent.destination, sent.source_transaction) == (account_id, charge_id)
    assert sent.metadata.to_dict() == {"order_id": "7"}
    transfer(client, other_id, amount=100, transfer_group="order_8")
    listed = client.v1.transfers.list(params={"transfer_group": "order_7"})
    assert [found.id for found in listed.data] == [sent.id]
    assert [t.id for t in client.v1.transfers.list(params={"destination": account_id}).data] == [
        sent.id
    ]
    assert client.v1.transfers.retrieve(sent.id).transfer_group == "order_7"
    assert "transfer.created" in platform.types()
    assert connect.received == []  # transfers are the platform's events
    assert standin.account_balance(account_id) == {"usd": 3000}
    on_behalf = client.v1.balance.retrieve(options={"stripe_account": account_id})
    assert [(funds.amount, funds.currency) for funds in on_behalf.available] == [(3000, "usd")]


def test_transfers_are_paged_newest_first(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    account_id = ready_account(standin, client)
    paid_charge(standin, client)
    sent = [transfer(client, account_id, amount=100, transfer_group="g").id for _ in range(3)]

    first = client.v1.transfers.list(params={"transfer_group": "g", "limit": 2})
    assert ([t.id for t in first.data], first.has_more) == (sent[:0:-1], True)
    rest = client.v1.transfers.list(
        params={"transfer_group": "g", "limit": 2, "starting_after": sent[1]}
    )
    assert ([t.id for t in rest.data], rest.has_more) == ([sent[0]], False)


def test_a_transfer_to_an_account_not_ready_is_refused(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    account_id = new_account(client).id
    charge_id = paid_charge(standin, client)

    error = refused(lambda: transfer(client, account_id, source_transaction=charge_id))

    assert (error.code, error.param) == ("insufficient_capabilities_for_transfer", "destination")
    assert refused(lambda: transfer(client, "acct_nobody")).code == "resource_missing"
    assert standin.transfers == {}


def test_the_source_transaction_rules(standin: StripeStandIn, client: stripe.StripeClient) -> None:
    account_id = ready_account(standin, client)
    charge_id = paid_charge(standin, client, amount=5000)

    other_currency = refused(
        lambda: transfer(client, account_id, currency="eur", source_transaction=charge_id)
    )
    assert other_currency.param == "currency"
    assert refused(lambda: transfer(client, account_id, source_transaction="ch_nope")).code == (
        "resource_missing"
    )
    transfer(client, account_id, amount=3000, source_transaction=charge_id)
    too_much = refused(
        lambda: transfer(client, account_id, amount=2001, source_transaction=charge_id)
    )
    assert too_much.param == "amount"
    transfer(client, account_id, amount=2000, source_transaction=charge_id)
    assert sum(t["amount"] for t in standin.transfers.values()) == 5000


def test_without_a_source_transaction_the_platform_balance_must_cover_it(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    account_id = ready_account(standin, client)
    paid_charge(standin, client, amount=5000)

    transfer(client, account_id, amount=4000)

    assert refused(lambda: transfer(client, account_id, amount=1001)).code == "balance_insufficient"
    platform_balance = client.v1.balance.retrieve()
    assert [(funds.amount, funds.currency) for funds in platform_balance.available] == [
        (1000, "usd")
    ]


def test_reversals_partial_then_the_rest(
    standin: StripeStandIn, client: stripe.StripeClient, platform: Receiver
) -> None:
    account_id = ready_account(standin, client)
    sent = transfer(client, account_id, source_transaction=paid_charge(standin, client))

    partial = client.v1.transfers.reversals.create(
        sent.id, params={"amount": 1000, "metadata": {"refund": "r1"}}
    )
    assert (partial.object, partial.amount, partial.transfer) == (
        "transfer_reversal",
        1000,
        sent.id,
    )
    too_much = refused(
        lambda: client.v1.transfers.reversals.create(sent.id, params={"amount": 2001})
    )
    assert too_much.param == "amount"
    rest = client.v1.transfers.reversals.create(sent.id)

    assert rest.amount == 2000
    reversed_ = client.v1.transfers.retrieve(sent.id)
    assert (reversed_.amount_reversed, reversed_.reversed) == (3000, True)
    assert [r.id for r in reversed_.reversals.data] == [rest.id, partial.id]
    assert [r.id for r in client.v1.transfers.reversals.list(sent.id).data] == [rest.id, partial.id]
    assert refused(lambda: client.v1.transfers.reversals.create(sent.id)).http_status == 400
    assert platform.types().count("transfer.reversed") == 2
    assert standin.account_balance(account_id) == {"usd": 0}


def test_a_reversal_the_vendor_balance_cannot_cover_is_refused(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    account_id = ready_account(standin, client)
    sent = transfer(client, account_id, source_transaction=paid_charge(standin, client))

    assert standin.pay_out(account_id, 2500) == {"usd": 500}
    error = refused(lambda: client.v1.transfers.reversals.create(sent.id))

    assert (error.http_status, error.code) == (400, "balance_insufficient")
    assert client.v1.transfers.reversals.create(sent.id, params={"amount": 500}).amount == 500
    assert client.v1.transfers.retrieve(sent.id).amount_reversed == 500


def test_cross_border_transfers_need_the_recipient_agreement(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    charge_id = paid_charge(standin, client)
    full = ready_account(standin, client, country="GB")
    recipient = ready_account(
        standin, client, country="GB", tos_acceptance={"service_agreement": "recipient"}
    )

    assert refused(lambda: transfer(client, full, amount=100)).param == "destination"
    assert transfer(client, recipient, amount=100, source_transaction=charge_id).destination == (
        recipient
    )
    standin.platform_country = "GB"
    assert client.v1.accounts.retrieve_current().country == "GB"
    assert transfer(client, full, amount=100, source_transaction=charge_id).destination == full


# --- levers on accounts -----------------------------------------------------------------------


def test_payouts_disabled_later_and_a_capability_lost_are_told(
    standin: StripeStandIn, client: stripe.StripeClient, connect: Receiver
) -> None:
    account_id = ready_account(standin, client)
    connect.received.clear()

    standin.set_payouts_enabled(account_id, False)
    standin.set_capability(account_id, "transfers", "inactive")

    assert connect.types() == ["account.updated", "capability.updated", "account.updated"]
    bank_problem = json.loads(connect.received[0][1])
    assert bank_problem["data"]["object"]["payouts_enabled"] is False
    assert bank_problem["data"]["object"]["requirements"]["currently_due"] == ["external_account"]
    capability = json.loads(connect.received[1][1])["data"]["object"]
    assert (capability["id"], capability["status"], capability["account"]) == (
        "transfers",
        "inactive",
        account_id,
    )
    error = refused(lambda: transfer(client, account_id, amount=1))
    assert error.code == "insufficient_capabilities_for_transfer"
    standin.finish_onboarding(account_id)
    assert client.v1.accounts.retrieve(account_id).payouts_enabled is True


def test_a_deauthorized_account_is_told_then_out_of_reach(
    standin: StripeStandIn, client: stripe.StripeClient, connect: Receiver
) -> None:
    account_id = ready_account(standin, client)
    connect.received.clear()

    standin.deauthorize(account_id)

    signature, payload = connect.received[0]
    event = stripe.Webhook.construct_event(payload, signature, CONNECT_SECRET)
    assert (event.type, event.account, event.data.object["object"]) == (
        "account.application.deauthorized",
        account_id,
        "application",
    )
    refused(lambda: client.v1.accounts.retrieve(account_id), stripe.PermissionError)
    assert refused(lambda: transfer(client, account_id, amount=1)).param == "destination"


# --- the Events API and the Stripe-Account header ---------------------------------------------


def test_connect_events_are_listed_only_on_behalf_of_their_account(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    account_id = ready_account(standin, client)
    paid_charge(standin, client)
    connect_events = [e["id"] for e in standin.events if e.get("account") == account_id]
    assert len(connect_events) == 2

    platform_ids = [e.id for e in client.v1.events.list(params={"limit": 100}).data]
    assert platform_ids
    assert not set(platform_ids) & set(connect_events)
    missing = refused(lambda: client.v1.events.retrieve(connect_events[0]))
    assert (missing.http_status, missing.user_message) == (
        404,
        f"No such event: '{connect_events[0]}'",
    )

    on_behalf = {"stripe_account": account_id}
    listed = client.v1.events.list(options=on_behalf)  # type: ignore[arg-type]
    assert [e.id for e in listed.data] == connect_events[::-1]
    assert standin.requests_log[-1].stripe_account == account_id
    assert client.v1.events.retrieve(connect_events[0], options=on_behalf).account == account_id  # type: ignore[arg-type]
    assert client.v1.accounts.retrieve_current(options=on_behalf).id == account_id  # type: ignore[arg-type]
    refused(
        lambda: client.v1.events.list(options={"stripe_account": "acct_nobody"}),  # type: ignore[arg-type]
        stripe.PermissionError,
    )
    assert (
        refused(
            lambda: client.v1.transfers.list(options=on_behalf)  # type: ignore[arg-type]
        ).http_status
        == 400
    )


def test_redelivering_a_connect_event_goes_to_the_connect_endpoint(
    standin: StripeStandIn, client: stripe.StripeClient, platform: Receiver, connect: Receiver
) -> None:
    ready_account(standin, client)
    event_id = connect.ids()[-1]

    assert standin.redeliver(event_id) == 200

    assert connect.ids()[-1] == event_id
    signature, payload = connect.received[-1]
    assert stripe.Webhook.construct_event(payload, signature, CONNECT_SECRET).id == event_id
    assert platform.received == []


def test_the_command_line_takes_the_connect_endpoint_and_the_platform_country() -> None:
    flags = ("--connect-webhook-secret", "whsec_cli", "--platform-country", "FR")
    with (
        listening() as connect,
        standin_process("--connect-webhook-url", connect.url, *flags) as api_base,
    ):
        cli = stripe.StripeClient(API_KEY, base_addresses={"api": api_base})
        assert cli.v1.accounts.retrieve_current().country == "FR"
        account = cli.v1.accounts.create(params={"type": "express"})
        assert account.country == "FR"
        link = cli.v1.account_links.create(params={"account": account.id, **LINK})  # type: ignore[arg-type]
        open_page(link.url)
        open_page(f"{link.url}/finish", post=True)
        signature, payload = connect.received[-1]
        event = stripe.Webhook.construct_event(payload, signature, "whsec_cli")
        assert event.account == account.id
