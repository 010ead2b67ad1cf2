"""What happens to the vendor's share when the money goes back: refunded before the release
(cancelled, never sent), after it (the transfer reversed), a reversal refused (a debt, recovered
from the vendor's next releases), and disputes opened before and after the release."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone
from outbox_helpers import drain
from payout_helpers import ledger_sum

from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.registry import kind_named
from marketlink.payouts.ledger import REVERSAL
from marketlink.payouts.models import PayoutEntry
from marketlink.payouts.selectors import balance_of

pytestmark = pytest.mark.django_db


def test_a_refund_before_the_release_cancels_it(market):
    vendor = market.vendor()
    order = market.processing(vendor)

    assert market.refund(order).status_code == 200

    assert market.payout(order).status == "cancelled"
    assert market.transfers_of(order) == []
    assert ledger_sum(vendor) == 0
    seen = market.api.get(f"/orders/{order['id']}/", user=vendor.user).json()["data"]
    assert seen["payout"]["status"] == "cancelled"


def test_a_refund_after_the_release_reverses_the_transfer(market):
    vendor = market.vendor()
    order = market.processing(vendor)
    market.complete(order)

    market.refund(order)

    (transfer,) = market.transfers_of(order)
    assert transfer["amount_reversed"] == transfer["amount"] == 2699
    payout = market.payout(order)
    assert (payout.status, payout.amount_reversed, payout.debt) == ("reversed", Decimal("26.99"), 0)
    balance = balance_of(vendor, "usd")
    assert (balance.released, balance.reversed, balance.debt) == (0, Decimal("26.99"), 0)
    assert ledger_sum(vendor) == 0


def test_a_refused_reversal_is_a_debt_the_next_releases_recover(market):
    vendor = market.vendor()
    first = market.processing(vendor)
    market.complete(first)
    market.standin.pay_out(vendor.connected_account.account_id)  # the vendor's bank has it all

    market.refund(first)

    payout = market.payout(first)
    assert (payout.status, payout.debt, payout.needs_attention) == ("debt", Decimal("26.99"), True)
    assert "balance_insufficient" in payout.note
    assert balance_of(vendor, "usd").debt == Decimal("26.99") == -ledger_sum(vendor)
    assert (
        market.api.get(f"/orders/{first['id']}/", user=vendor.user).json()["data"]["payout"][
            "status"
        ]
        == "debt"
    )

    # The next release sends nothing: its share pays the debt back whole.
    second = market.processing(vendor)
    market.complete(second)
    assert market.transfers_of(second) == []
    released = market.payout(second)
    assert (released.status, released.amount, released.transfer_id) == ("released", 0, None)
    assert market.payout(first).status == "reversed"  # its debt recovered
    # A later one, partly: a 40.00 order (36.00 share) recovers nothing more, sends it all.
    third = market.processing(vendor, price="40.00")
    market.complete(third)
    assert [t["amount"] for t in market.transfers_of(third)] == [3600]
    assert balance_of(vendor, "usd").debt == 0 == ledger_sum(vendor)


def test_a_debt_is_recovered_in_part_and_owed_again_when_the_recovering_order_is_refunded(
    market,
):
    vendor = market.vendor()
    small = market.processing(vendor, price="10.00")  # share 9.00
    market.complete(small)
    market.standin.pay_out(vendor.connected_account.account_id)
    market.refund(small)  # refused: a debt of 9.00
    bigger = market.processing(vendor)  # share 26.99

    market.complete(bigger)

    assert [t["amount"] for t in market.transfers_of(bigger)] == [1799]  # 26.99 - 9.00
    assert market.payout(bigger).amount == Decimal("17.99")
    market.refund(bigger)  # its transfer reversed; what it recovered is owed again
    assert market.payout(small).debt == Decimal("9.00")
    assert balance_of(vendor, "usd").debt == Decimal("9.00") == -ledger_sum(vendor)


def test_a_dispute_before_the_release_holds_it_until_won(market):
    vendor = market.vendor()
    order = market.processing(vendor)
    intent = market.payout(order).order.payment_intent_id
    dispute = market.standin.dispute(intent)
    market.deliver()

    market.complete(order)

    assert market.transfers_of(order) == []
    seen = market.api.get(f"/orders/{order['id']}/", user=vendor.user).json()["data"]
    assert seen["payout"]["status"] == "held"
    assert market.payout(order).needs_attention
    market.standin.close_dispute(dispute["id"], won=True)
    market.deliver()
    assert len(market.transfers_of(order)) == 1
    assert market.payout(order).status == "released"


def test_a_dispute_lost_before_the_release_cancels_it_and_after_reverses_it(market):
    vendor = market.vendor()
    before, after = market.processing(vendor), market.processing(vendor)
    market.complete(after)
    for order in (before, after):
        intent = market.payout(order).order.payment_intent_id
        market.standin.close_dispute(market.standin.dispute(intent)["id"], won=False)
    market.deliver()

    assert market.payout(before).status == "cancelled"
    assert market.transfers_of(before) == []
    assert market.payout(after).status == "reversed"
    assert market.transfers_of(after)[0]["amount_reversed"] == 2699
    assert ledger_sum(vendor) == 0
    # The money went back through the disputes: the ledger names each.
    refunds = PayoutEntry.objects.filter(vendor=vendor, kind="refund")
    assert sorted(entry.provider_id[:3] for entry in refunds) == ["dp_", "dp_"]


def test_money_given_back_twice_is_given_back_once(market):
    """A dispute lost, then the order refunded as well (a state machine's find): the vendor's
    sale and the platform's fee are undone once."""
    vendor = market.vendor()
    order = market.processing(vendor)
    intent = market.payout(order).order.payment_intent_id
    market.standin.close_dispute(market.standin.dispute(intent)["id"], won=False)
    market.deliver()

    market.refund(order)
    market.deliver()

    assert PayoutEntry.objects.filter(order_id=order["id"], kind="fee_refund").count() == 1
    assert ledger_sum(vendor) == 0


def test_a_reversal_refused_access_is_asked_again_and_is_a_debt_only_when_its_retries_are_spent(
    market,
):
    """A 403 (the account disconnected, or a key without the right) decided nothing: the
    reversal is asked again under its key, not taken for a refusal. Once its retries are spent
    the vendor still holds the money, and the ledger says so: a debt, flagged."""
    vendor = market.vendor()
    order = market.processing(vendor)
    market.complete(order)
    market.standin.fail_reversals(10, status=403, code="no_access")

    market.refund(order)

    assert (market.payout(order).debt, market.payout(order).needs_attention) == (0, False)
    entry = OutboxEntry.objects.get(kind=REVERSAL)
    assert (entry.status, entry.attempts, entry.payload.get("refused")) == ("pending", 1, False)
    assert "no answer" in entry.last_error

    # About 42 minutes of retries later, the last one refused too.
    retries = kind_named(REVERSAL).retries
    OutboxEntry.objects.filter(pk=entry.pk).update(attempts=retries, due_at=timezone.now())
    drain(kinds=[REVERSAL])

    payout = market.payout(order)
    assert (payout.status, payout.debt, payout.needs_attention) == ("debt", Decimal("26.99"), True)
    assert balance_of(vendor, "usd").debt == Decimal("26.99") == -ledger_sum(vendor)
    assert OutboxEntry.objects.get(pk=entry.pk).status == "failed"
