"""The Stripe gateway's Connect half against the stand-in, through the real SDK: the account
in the documented form, its state as marketlink reads it, transfers from the paying charge,
their reversals, the refusals in marketlink's terms, and Connect events parsed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from stripe_connect import make_client, paid_charge
from stripe_shop import stripe_settings

from marketlink.payments.gateways.base import (
    AccountRequest,
    EventKind,
    GatewayError,
    ReversalRequest,
    TransferRequest,
)
from marketlink.payments.gateways.stripe import StripeGateway
from marketlink.testing.stripe_server import StripeStandIn


@pytest.fixture
def standin(settings: Any) -> Iterator[StripeStandIn]:
    with StripeStandIn(auto_deliver=False) as standin:
        settings.MARKETLINK = stripe_settings(
            standin, STRIPE_CONNECT_WEBHOOK_SECRET=standin.connect_webhook_secret
        )
        yield standin


def asked(standin: StripeStandIn, path: str) -> Any:
    return next(r for r in standin.requests_log if r.method == "POST" and r.path == path)


def account_request(country: str = "US", recipient: bool = False) -> AccountRequest:
    return AccountRequest(
        vendor_id="v1",
        email="vendor@example.com",
        country=country,
        recipient=recipient,
        idempotency_key="marketlink-account-v1",
    )


def test_an_account_is_asked_for_in_the_documented_form(standin):
    account = StripeGateway().create_account(account_request())

    request = asked(standin, "/v1/accounts")
    assert request.idempotency_key == "marketlink-account-v1"
    assert request.params == {
        "controller": {
            "stripe_dashboard": {"type": "express"},
            "fees": {"payer": "application"},
            "losses": {"payments": "application"},
        },
        "capabilities": {"transfers": {"requested": "true"}},
        "country": "US",
        "email": "vendor@example.com",
        "metadata": {"vendor_id": "v1"},
    }
    # A new account lists its fields as currently due and past due: marketlink says each once.
    assert len(account.requirements_due) == len(set(account.requirements_due)) > 0
    assert (account.payouts_enabled, account.transfers_active) == (False, False)

    standin.finish_onboarding(account.id)
    ready = StripeGateway().fetch_account(account.id)
    assert (ready.payouts_enabled, ready.transfers_active, ready.charges_enabled) == (
        True,
        True,
        False,  # transfers only: never what "ready" means
    )
    assert ready.requirements_due == ()


def test_an_account_across_borders_is_a_recipient(standin):
    StripeGateway().create_account(account_request("GB", recipient=True))
    assert asked(standin, "/v1/accounts").params["tos_acceptance"] == {
        "service_agreement": "recipient"
    }
    assert StripeGateway().platform_country() == "US"


def test_transfers_and_reversals_and_their_refusals(standin):
    client = make_client(standin)
    gateway = StripeGateway()
    account = gateway.create_account(account_request()).id
    standin.finish_onboarding(account)
    charge = paid_charge(standin, client, amount=5000)
    intent = client.v1.charges.retrieve(charge).payment_intent
    assert gateway.payment_charge(str(intent)) == charge

    transfer = gateway.create_transfer(
        TransferRequest(
            amount_minor=4500,
            currency="usd",
            destination=account,
            transfer_group="order_7",
            source_transaction=charge,
            order_id="7",
            idempotency_key="marketlink-x-1",
        )
    )
    assert (transfer.amount_minor, transfer.destination, transfer.order_ref) == (4500, account, "7")
    assert [t.id for t in gateway.list_transfers(transfer_group="order_7")] == [transfer.id]
    assert gateway.list_transfers(transfer_group="order_8") == ()

    reversal = gateway.reverse_transfer(
        ReversalRequest(
            transfer_id=transfer.id, amount_minor=500, order_id="7", idempotency_key="r-1"
        )
    )
    assert (reversal.transfer_id, reversal.amount_minor) == (transfer.id, 500)
    standin.pay_out(account)  # the vendor's balance left for their bank
    with pytest.raises(GatewayError) as refused:
        gateway.reverse_transfer(
            ReversalRequest(
                transfer_id=transfer.id, amount_minor=4000, order_id="7", idempotency_key="r-2"
            )
        )
    assert (refused.value.answered, refused.value.reason) == (True, "balance_insufficient")
    assert gateway.list_transfers(transfer_group="order_7")[0].amount_reversed_minor == 500

    standin.fail_transfers(3, status=503)  # the SDK's own two retries included
    with pytest.raises(GatewayError) as unanswered:
        gateway.create_transfer(
            TransferRequest(100, "usd", account, "order_7", charge, "7", "marketlink-y-1")
        )
    assert unanswered.value.answered is False  # no answer was saved: the same key may go again


def test_connect_events_are_read_in_marketlink_s_terms(standin):
    account = StripeGateway().create_account(account_request()).id
    standin.finish_onboarding(account)
    events = {event["type"]: event for event in standin.events}

    updated = StripeGateway().parse_event(events["account.updated"])
    assert (updated.kind, updated.account) == (EventKind.ACCOUNT_UPDATED, account)
    assert updated.connected_account is not None
    assert updated.connected_account.transfers_active is True
    capability = StripeGateway().parse_event(events["capability.updated"])
    assert (capability.kind, capability.account) == (EventKind.CAPABILITY_UPDATED, account)
