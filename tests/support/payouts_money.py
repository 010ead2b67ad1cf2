"""The payouts half of the shared invariants: every cent of the orders paid with payouts on is
refunded, kept as the platform's fee, held for the vendor, transferred to them (net of what was
reversed), or owed back by them; the ledger agrees; the provider made what the ledger says, and
never two transfers for one order."""

from __future__ import annotations

from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from marketlink.money import from_minor_units
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.payments.models import Dispute, DisputeOutcome
from marketlink.payouts.models import ConnectedAccount, EntryKind, Payout, PayoutEntry, PayoutStatus

ZERO = Decimal("0.00")
TERMS = ("paid", "refunded", "fees", "held", "transferred", "debt", "settled", "ledger")


def money_problems(standin: Any = None) -> list[str]:
    books: dict[Any, Counter[str]] = defaultdict(Counter)
    problems: list[str] = []
    entries = list(PayoutEntry.objects.all())
    by_order: dict[Any, list[PayoutEntry]] = defaultdict(list)
    for entry in entries:
        by_order[entry.order_id].append(entry)
        books[entry.vendor_id]["ledger"] += entry.amount
        if entry.kind == EntryKind.ADJUSTMENT:
            books[entry.vendor_id]["settled"] += entry.amount
    lost = set(
        Dispute.objects.filter(outcome=DisputeOutcome.LOST).values_list("order_id", flat=True)
    )
    payouts = {payout.order_id: payout for payout in Payout.objects.all()}
    for order in RepairOrder.objects.filter(payouts_on=True, paid_at__isnull=False):
        book = books[order.vendor_id]
        payout = payouts.get(order.pk)
        if payout is None:
            problems.append(f"order {order.pk}: paid with payouts on, and has no payout")
            continue
        gone = order.status == OrderStatus.REFUNDED or order.pk in lost
        book["paid"] += order.total_amount
        charged = -sum((e.amount for e in by_order[order.pk] if e.kind == EntryKind.REFUND), ZERO)
        if gone:
            book["refunded"] += order.total_amount
        else:
            book["refunded"] += order.amount_refunded
            # A partial refund staff did not charge to the vendor came out of the fee.
            book["fees"] += order.platform_fee - (order.amount_refunded - charged)
        if payout.status == PayoutStatus.HELD:
            book["held"] += payout.share
        elif payout.status == PayoutStatus.DUE:
            book["held"] += payout.amount or ZERO
        book["debt"] += payout.debt + payout.reversal_due
        problems += _payout_shape(payout)
    problems += _provider_side(books, by_order, standin)
    for vendor_id, book in books.items():
        net = book["paid"] - book["refunded"] - book["fees"] - book["transferred"]
        right = book["held"] - book["debt"] - book["settled"]
        if net != right:
            problems.append(
                f"vendor {vendor_id}: money does not add up: "
                + ", ".join(f"{term} {book[term]}" for term in TERMS)
            )
        if book["ledger"] != book["held"] - book["debt"]:
            problems.append(
                f"vendor {vendor_id}: the ledger sums to {book['ledger']}, held - debt is "
                f"{book['held'] - book['debt']}"
            )
    return problems


def _payout_shape(payout: Payout) -> list[str]:
    sent = payout.status in (PayoutStatus.RELEASED, PayoutStatus.REVERSED, PayoutStatus.DEBT)
    if sent and not payout.transfer_id and payout.amount:
        return [f"payout of order {payout.order_id}: {payout.status} without a transfer"]
    if payout.status in (PayoutStatus.HELD, PayoutStatus.DUE) and payout.transfer_id:
        return [f"payout of order {payout.order_id}: {payout.status} with a transfer"]
    return []


def _provider_side(
    books: dict[Any, Counter[str]], by_order: dict[Any, list[PayoutEntry]], standin: Any
) -> list[str]:
    """``transferred`` for each vendor as the provider says it, and what the ledger recorded
    of its transfers and reversals checked against it."""
    problems: list[str] = []
    made = _transfers(standin)
    vendors = dict(ConnectedAccount.objects.values_list("account_id", "vendor_id"))
    per_order = Counter(transfer["order_id"] for transfer in made.values())
    problems += [f"order {o}: {n} transfers" for o, n in per_order.items() if n > 1]
    for transfer in made.values():
        vendor = vendors.get(transfer["destination"])
        if vendor is not None:
            books[vendor]["transferred"] += transfer["amount"] - transfer["reversed"]
    for order_id, entries in by_order.items():
        for entry in entries:
            if entry.kind == EntryKind.TRANSFER:
                there = made.get(entry.provider_id)
                if there is None or there["amount"] != -entry.amount:
                    problems.append(f"order {order_id}: transfer {entry.provider_id} not so there")
            elif entry.kind == EntryKind.REVERSAL and entry.provider_id not in _reversal_ids(made):
                problems.append(f"order {order_id}: reversal {entry.provider_id} unknown there")
    return problems


def _transfers(standin: Any) -> dict[str, dict[str, Any]]:
    """The provider's transfers by id: the stand-in's, or the dummy gateway's own."""
    if standin is not None:
        return {
            t["id"]: {
                "order_id": t["metadata"].get("order_id"),
                "destination": t["destination"],
                "amount": from_minor_units(t["amount"], t["currency"]),
                "reversed": from_minor_units(t["amount_reversed"], t["currency"]),
                "reversals": [r["id"] for r in t["reversals"]["data"]],
            }
            for t in standin.transfers.values()
        }
    from marketlink.payments.models import DummyTransfer

    return {
        t.id: {
            "order_id": t.order_ref,
            "destination": t.destination_id,
            "amount": from_minor_units(t.amount_minor, t.currency),
            "reversed": from_minor_units(t.amount_reversed_minor, t.currency),
            "reversals": list(t.reversals.values_list("id", flat=True)),
        }
        for t in DummyTransfer.objects.prefetch_related("reversals")
    }


def _reversal_ids(made: dict[str, dict[str, Any]]) -> set[str]:
    return {reversal for transfer in made.values() for reversal in transfer["reversals"]}
