"""Stripe's idempotency-key rules on the stand-in, through the real stripe SDK: the first answer
under a key is replayed (refusals and 500s included, once the endpoint ran), the same key with
other parameters is a 400, refused parameters and outages save nothing, and a key is forgotten
after 24 hours on the stand-in's clock.

These are the rules a payout's retries depend on: the same key only after no answer came back,
a new key after a definite refusal.
"""

from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from stripe_connect import make_client, new_account, paid_charge

from marketlink.testing.stripe_server import StripeStandIn

DAY = 24 * 60 * 60


@pytest.fixture
def standin() -> Iterator[StripeStandIn]:
    with StripeStandIn() as standin:
        yield standin


@pytest.fixture
def client(standin: StripeStandIn) -> stripe.StripeClient:
    return make_client(standin)


@pytest.fixture
def charge(standin: StripeStandIn, client: stripe.StripeClient) -> str:
    return paid_charge(standin, client)


@pytest.fixture
def to_vendor(standin: StripeStandIn, client: stripe.StripeClient, charge: str) -> dict[str, Any]:
    """A transfer's parameters: 1000 of the charge's 5000 to an onboarded account."""
    account_id = new_account(client).id
    standin.finish_onboarding(account_id)
    return {
        "amount": 1000,
        "currency": "usd",
        "destination": account_id,
        "source_transaction": charge,
    }


def transfer(client: stripe.StripeClient, key: str, **params: Any) -> stripe.Transfer:
    return client.v1.transfers.create(params=params, options={"idempotency_key": key})  # type: ignore[arg-type]


def posts(standin: StripeStandIn, path: str) -> list[tuple[int, str | None]]:
    return [(r.status, r.idempotency_key) for r in standin.requests_log if r.path == path]


def test_the_same_key_replays_the_first_answer_and_other_parameters_are_refused(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    first = new_account(client, "marketlink-account-42")
    again = new_account(client, "marketlink-account-42")

    assert again.id == first.id
    assert again.last_response.headers["Idempotent-Replayed"] == "true"
    assert list(standin.accounts) == [first.id]
    with pytest.raises(stripe.IdempotencyError) as changed:
        new_account(client, "marketlink-account-42", email="other@example.com")
    assert changed.value.http_status == 400
    assert list(standin.accounts) == [first.id]


def test_a_refusal_is_saved_and_replayed_until_a_new_key(
    standin: StripeStandIn, client: stripe.StripeClient, charge: str
) -> None:
    account_id = new_account(client).id
    params = {"amount": 1000, "currency": "usd", "destination": account_id}

    with pytest.raises(stripe.InvalidRequestError) as not_ready:
        transfer(client, "marketlink-1-1", source_transaction=charge, **params)
    standin.finish_onboarding(account_id)
    with pytest.raises(stripe.InvalidRequestError) as replayed:
        transfer(client, "marketlink-1-1", source_transaction=charge, **params)

    assert not_ready.value.code == replayed.value.code == "insufficient_capabilities_for_transfer"
    assert replayed.value.headers is not None
    assert replayed.value.headers["Idempotent-Replayed"] == "true"
    assert standin.transfers == {}
    sent = transfer(client, "marketlink-1-2", source_transaction=charge, **params)
    assert list(standin.transfers) == [sent.id]


def test_refused_parameters_are_not_saved(
    standin: StripeStandIn, client: stripe.StripeClient
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as misspelt:
        new_account(client, "marketlink-account-7", contry="US")
    assert misspelt.value.code == "parameter_unknown"

    account = new_account(client, "marketlink-account-7")

    assert account.last_response.headers.get("Idempotent-Replayed") is None
    assert list(standin.accounts) == [account.id]


def test_a_key_is_forgotten_after_24_hours_on_the_stand_ins_clock(
    standin: StripeStandIn, client: stripe.StripeClient, to_vendor: dict[str, Any]
) -> None:
    first = transfer(client, "marketlink-9-1", **to_vendor)

    standin.clock_offset = DAY - 60
    assert transfer(client, "marketlink-9-1", **to_vendor).id == first.id
    standin.clock_offset = DAY
    later = transfer(client, "marketlink-9-1", **to_vendor)

    assert later.id != first.id
    assert sorted(standin.transfers) == sorted([first.id, later.id])


def test_an_injected_500_is_saved_so_the_sdk_does_not_retry_it(
    standin: StripeStandIn, to_vendor: dict[str, Any]
) -> None:
    client = make_client(standin, retries=2)
    standin.fail_transfers(1, status=500)

    with pytest.raises(stripe.APIError) as failed:
        transfer(client, "marketlink-3-1", **to_vendor)
    with pytest.raises(stripe.APIError) as replayed:
        transfer(client, "marketlink-3-1", **to_vendor)

    assert failed.value.http_status == replayed.value.http_status == 500
    assert posts(standin, "/v1/transfers") == [(500, "marketlink-3-1"), (500, "marketlink-3-1")]
    assert standin.transfers == {}
    assert transfer(client, "marketlink-3-2", **to_vendor).amount == 1000


def test_a_503_saves_nothing_so_a_retry_with_the_same_key_runs(
    standin: StripeStandIn, to_vendor: dict[str, Any]
) -> None:
    standin.fail_transfers(1, status=503)

    sent = transfer(make_client(standin, retries=1), "marketlink-4-1", **to_vendor)

    assert posts(standin, "/v1/transfers") == [(503, "marketlink-4-1"), (200, "marketlink-4-1")]
    assert list(standin.transfers) == [sent.id]


def test_an_injected_refusal_carries_its_code_and_reversals_fail_alike(
    standin: StripeStandIn, client: stripe.StripeClient, to_vendor: dict[str, Any]
) -> None:
    standin.fail_transfers(1, status=400, code="account_closed", message="Closed.")

    with pytest.raises(stripe.InvalidRequestError) as closed:
        transfer(client, "marketlink-5-1", **to_vendor)
    sent = transfer(client, "marketlink-5-2", **to_vendor)
    standin.fail_reversals(1, status=400, code="balance_insufficient")
    with pytest.raises(stripe.InvalidRequestError) as reversal:
        client.v1.transfers.reversals.create(sent.id, options={"idempotency_key": "rev-1"})

    assert (closed.value.code, closed.value.user_message) == ("account_closed", "Closed.")
    assert reversal.value.code == "balance_insufficient"
    reversed_ = client.v1.transfers.reversals.create(sent.id, options={"idempotency_key": "rev-2"})
    again = client.v1.transfers.reversals.create(sent.id, options={"idempotency_key": "rev-2"})
    assert again.id == reversed_.id
    assert client.v1.transfers.retrieve(sent.id).amount_reversed == 1000
