"""The vendor's share released as one transfer (from the charge that paid the order), exactly
once, whatever runs twice or fails; and the ledger that accounts for it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from payout_helpers import ledger_sum
from stripe_shop import api_calls

from marketlink.outbox.drainer import drain
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.services import outbox_retry
from marketlink.payments.gateways.base import TransferRequest, transfer_group
from marketlink.payments.gateways.stripe import StripeGateway
from marketlink.payouts.models import AppendOnly, PayoutEntry

pytestmark = pytest.mark.django_db


def release_row(order) -> OutboxEntry:
    return OutboxEntry.objects.get(kind="payout_release", subject_id=str(order["id"]))


def test_completion_releases_the_share_in_one_transfer_from_the_paying_charge(market):
    vendor = market.vendor()
    order = market.processing(vendor)
    assert market.transfers_of(order) == []  # paid is not released: completion is

    seen = market.complete(order)

    (transfer,) = market.transfers_of(order)
    intent = market.standin.payment_intents[market.payout(order).order.payment_intent_id]
    assert transfer["amount"] == 2699  # 29.99 less the 10 % fee, 3.00
    assert transfer["currency"] == "usd"
    assert transfer["destination"] == vendor.connected_account.account_id
    assert transfer["transfer_group"] == f"order_{order['id']}" == transfer_group(order["id"])
    assert transfer["source_transaction"] == intent["latest_charge"]
    made = [r for r in market.standin.requests_log if r.path == "/v1/transfers"]
    assert made[0].idempotency_key == f"marketlink-{release_row(order).pk}-1"
    answer = market.api.get(f"/orders/{order['id']}/", user=vendor.user).json()["data"]
    assert answer["payout"] == {
        "status": "released",
        "amount": "26.99",
        "transfer_id": transfer["id"],
    }
    assert seen["payout"]["status"] == "due"  # the transfer follows the completion's commit
    kinds = sorted(PayoutEntry.objects.filter(order_id=order["id"]).values_list("kind", "amount"))
    assert kinds == [
        ("platform_fee", Decimal("-3.00")),
        ("sale", Decimal("29.99")),
        ("transfer", Decimal("-26.99")),
    ]
    assert ledger_sum(vendor) == 0

    # The row run again (an operator's retry), and the transfer's webhook: nothing more.
    outbox_retry(ids=[release_row(order).pk])
    drain()
    market.deliver()
    assert len(market.transfers_of(order)) == 1
    balance = market.api.get("/vendors/payouts/", user=vendor.user).json()["data"]["balance"]
    assert balance == {
        "currency": "usd",
        "held": "0.00",
        "released": "26.99",
        "reversed": "0.00",
        "debt": "0.00",
    }


def test_a_paid_order_is_held_and_released_on_payment_when_so_configured(market, settings):
    vendor = market.vendor()
    held = market.processing(vendor)
    assert market.payout(held).status == "held"
    settings.MARKETLINK = {**settings.MARKETLINK, "PAYOUT_RELEASE": "on_payment"}
    released = market.processing(vendor)
    assert market.payout(released).status == "released"
    assert len(market.transfers_of(released)) == 1
    assert market.transfers_of(held) == []


def test_a_refused_transfer_is_asked_again_under_a_new_key_after_looking(market):
    vendor = market.vendor()
    order = market.processing(vendor)
    market.standin.fail_transfers(1, status=400, code="account_closed")

    market.complete(order)

    row = release_row(order)
    assert (row.status, market.payout(order).status) == ("pending", "due")
    assert "refused" in row.last_error
    outbox_retry(ids=[row.pk])  # due now, not after its back-off
    drain()
    calls = api_calls(market.standin)
    transfers = [call for call in calls if call[1] == "/v1/transfers"]
    # The refusal, a look at the order's transfers, then the transfer under the next key.
    assert transfers == [
        ("POST", "/v1/transfers"),
        ("GET", "/v1/transfers"),
        ("POST", "/v1/transfers"),
    ]
    keys = [
        r.idempotency_key
        for r in market.standin.requests_log
        if r.method == "POST" and r.path == "/v1/transfers"
    ]
    assert keys == [f"marketlink-{row.pk}-1", f"marketlink-{row.pk}-2"]
    assert len(market.transfers_of(order)) == 1
    assert market.payout(order).status == "released"


def test_no_answer_is_asked_again_under_the_same_key(market):
    vendor = market.vendor()
    order = market.processing(vendor)
    market.standin.fail_transfers(3, status=503)  # the SDK's own retries included

    market.complete(order)
    outbox_retry(ids=[release_row(order).pk])
    drain()

    keys = {r.idempotency_key for r in market.standin.requests_log if r.path == "/v1/transfers"}
    assert keys == {f"marketlink-{release_row(order).pk}-1"}
    assert len(market.transfers_of(order)) == 1


def test_a_retry_a_day_later_records_the_transfer_made_and_makes_no_other(market):
    """The first attempt reached Stripe, its answer was lost; a day later Stripe no longer knows
    the key: the retry looks for the order's transfers first and records the one it finds."""
    vendor = market.vendor()
    order = market.processing(vendor)
    market.standin.down = True
    market.complete(order)
    market.standin.down = False
    row = release_row(order)
    payout = market.payout(order)
    StripeGateway().create_transfer(  # what the lost attempt made
        TransferRequest(2699, "usd", vendor.connected_account.account_id,
                        transfer_group(order["id"]), None, str(order["id"]), row.payload["key"])
    )  # fmt: skip
    day_ago = (payout.created_at - timedelta(hours=25)).isoformat()
    OutboxEntry.objects.filter(pk=row.pk).update(payload={**row.payload, "key_at": day_ago})
    market.standin.clock_offset = 25 * 3600  # Stripe's memory of the key is gone

    outbox_retry(ids=[row.pk])
    drain()

    assert len(market.transfers_of(order)) == 1
    assert market.payout(order).status == "released"
    assert ledger_sum(vendor) == 0


def test_the_ledger_is_append_only(market):
    vendor = market.vendor()
    market.complete(market.processing(vendor))
    entry = PayoutEntry.objects.filter(vendor=vendor).first()
    entry.amount = Decimal("1.00")
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    with pytest.raises(AppendOnly):
        PayoutEntry.objects.filter(vendor=vendor).update(amount=0)
    with pytest.raises(AppendOnly):
        PayoutEntry.objects.filter(vendor=vendor).delete()
