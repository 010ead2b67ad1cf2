"""The invariants every fault, fuzz, soak and recovery test ends with, checked once, here.

- Units add up: for each variant, stock + units held by live orders + units used by completed
  orders == units made available (the catalog's ledger).
- Every paid order is paid exactly once, with the right amount and currency; any other payment
  the provider took for it is being given back.
- Every paid order's invoice is sent, or failed and so flagged (``settled``: nothing in flight).
- No lapsed reservation still holds a unit (``expiry_grace``: how late the expiry job may be).
- No payment event is left unprocessed without being flagged for attention.
- Money refunded never exceeds money paid, and an order's status agrees with its refunds: it is
  ``refunded`` exactly when the refunds of its own payment that succeeded reach its total, and
  its ``amount_refunded`` is what of them stands succeeded now. With the provider's side: each
  recorded refund is one the provider made, for that amount and currency.

- Money adds up for every vendor and for the platform, over the orders paid with payouts on:
  paid = refunded (lost disputes included) + fees kept + held + (transferred - reversed) -
  debt outstanding - settled by hand, where a refunded order keeps no fee (and a partial refund
  not charged to the vendor comes out of the fee), "transferred - reversed" is read from the
  provider where it is given (the stand-in, or the dummy gateway's own records); a vendor's
  ledger sums to held - debt; each order has at most one transfer, and each transfer and
  reversal the ledger records is the provider's, for that amount.

``invariant_violations`` returns what is wrong as sentences, so a failing test says which order,
variant or event broke which rule; ``assert_invariants`` fails with all of them at once.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.utils import timezone

from marketlink.money import from_minor_units, to_minor_units
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.selectors import stock_ledger
from marketlink.payments.models import (
    EventStatus,
    Invoice,
    InvoiceStatus,
    PaymentEvent,
    Refund,
    RefundKind,
    RefundStatus,
)


def invariant_violations(
    *,
    standin: Any = None,
    settled: bool = True,
    expiry_grace: timedelta | None = timedelta(minutes=2),
    payments_in_flight: Collection[str] = (),
) -> list[str]:
    """What breaks the invariants now. ``standin`` (a running ``StripeStandIn``) adds the
    provider's side: which payments it took for which order. ``payments_in_flight``: payment
    intents the provider took whose events have not reached us yet (not yet ours to account
    for: the order may look unpaid until they arrive)."""
    problems = [
        f"variant {line.variant_id}: stock {line.stock} + held {line.held} + used {line.used} "
        f"!= {line.units_made_available} made available"
        for line in stock_ledger()
        if not line.balanced
    ]
    problems += _unpaid_money(standin, payments_in_flight) if standin is not None else []
    problems += _invoice_problems(settled)
    problems += _refund_problems()
    problems += _refunds_unknown_there(standin) if standin is not None else []
    problems += payout_problems(standin)
    if expiry_grace is not None:
        lapsed = RepairOrder.objects.filter(
            status=OrderStatus.PENDING, expires_at__lt=timezone.now() - expiry_grace
        )
        problems += [
            f"order {pk}: reservation lapsed but still pending"
            for pk in lapsed.values_list("pk", flat=True)
        ]
    unflagged = PaymentEvent.objects.exclude(
        status__in=[EventStatus.PROCESSED, EventStatus.IGNORED]
    ).filter(needs_attention=False)
    if settled:
        problems += [
            f"event {event_id}: {status} and not flagged for attention"
            for event_id, status in unflagged.values_list("event_id", "status")
        ]
    return problems


def assert_invariants(**options: Any) -> None:
    problems = invariant_violations(**options)
    assert not problems, "invariants broken:\n" + "\n".join(problems)


def _unpaid_money(standin: Any, in_flight: Collection[str]) -> list[str]:
    """Each payment the provider took is the order's one payment, at its price, or is being
    refunded; and each paid order's payment is one the provider took."""
    problems = []
    orders = {str(order.pk): order for order in RepairOrder.objects.all()}
    refunded_intents = set(Refund.objects.values_list("payment_intent_id", flat=True))
    taken: dict[str, list[dict[str, Any]]] = {}
    for intent in standin.payment_intents.values():
        order_id = intent.get("metadata", {}).get("order_id")
        if (
            intent.get("status") == "succeeded"
            and order_id in orders
            and intent["id"] not in in_flight
        ):
            taken.setdefault(order_id, []).append(intent)
    for order_id, order in orders.items():
        intents = taken.get(order_id, [])
        if order.paid_at is None:
            problems += [
                f"order {order_id}: {intent['id']} took money, the order is not paid and no "
                "refund gives it back"
                for intent in intents
                if intent["id"] not in refunded_intents
            ]
            continue
        own = [intent for intent in intents if intent["id"] == order.payment_intent_id]
        if not own:
            problems.append(f"order {order_id}: paid by {order.payment_intent_id}, unknown there")
            continue
        expected = to_minor_units(order.total_amount, order.currency)
        if own[0]["amount"] != expected or own[0]["currency"] != order.currency.lower():
            problems.append(
                f"order {order_id}: paid {own[0]['amount']} {own[0]['currency']}, "
                f"expected {expected} {order.currency.lower()}"
            )
        problems += [
            f"order {order_id}: paid twice, {intent['id']} is not being refunded"
            for intent in intents
            if intent["id"] != order.payment_intent_id and intent["id"] not in refunded_intents
        ]
    return problems


def _invoice_problems(settled: bool) -> list[str]:
    paid = RepairOrder.objects.filter(paid_at__isnull=False)
    invoiced = dict(Invoice.objects.values_list("order_id", "status"))
    done = {InvoiceStatus.SENT, InvoiceStatus.FAILED}
    problems = []
    for pk in paid.values_list("pk", flat=True):
        status = invoiced.get(pk)
        if status is None and settled:
            problems.append(f"order {pk}: paid, and has no invoice")
        elif status is not None and status not in done and settled:
            problems.append(f"order {pk}: invoice still {status}")
    return problems


def _refund_problems() -> list[str]:
    problems = []
    rows: dict[tuple[Any, str], list[Refund]] = {}
    for refund in Refund.objects.all():
        rows.setdefault((refund.order_id, refund.payment_intent_id), []).append(refund)
    for order in RepairOrder.objects.all():
        total = to_minor_units(order.total_amount, order.currency)
        own = order.payment_intent_id
        for (order_id, intent), refunds in rows.items():
            if order_id != order.pk:
                continue
            now = sum(r.amount_minor for r in refunds if r.status == RefundStatus.SUCCEEDED)
            if now > total:
                problems.append(f"order {order.pk}: {now} refunded of {intent}, paid {total}")
            given_back = any(r.kind in (RefundKind.LATE, RefundKind.DUPLICATE) for r in refunds)
            if intent != own and (own or given_back):
                continue  # another payment's refunds never count toward the order
            ever = sum(r.amount_minor for r in refunds if r.succeeded_at is not None)
            if (ever >= total) != (order.status == OrderStatus.REFUNDED):
                problems.append(
                    f"order {order.pk}: {order.status}, with {ever} of {total} refunded by its "
                    f"own payment {intent}"
                )
            if intent == own and order.amount_refunded != from_minor_units(now, order.currency):
                problems.append(
                    f"order {order.pk}: amount_refunded {order.amount_refunded}, refunds say {now}"
                )
        if order.status == OrderStatus.REFUNDED and (order.pk, own) not in rows:
            problems.append(f"order {order.pk}: refunded, with no refund of its payment {own}")
    return problems


def _refunds_unknown_there(standin: Any) -> list[str]:
    """Each refund recorded with a provider id is the provider's, with its amount and currency;
    one recorded succeeded stands succeeded there (or failed later: never back to pending)."""
    there = standin.refunds
    problems = []
    for refund in Refund.objects.exclude(provider_refund_id=None):
        made = there.get(refund.provider_refund_id)
        if made is None:
            problems.append(f"refund {refund.provider_refund_id}: unknown at the provider")
            continue
        if (made["amount"], made["currency"]) != (refund.amount_minor, refund.currency):
            problems.append(
                f"refund {refund.provider_refund_id}: {refund.amount_minor} {refund.currency} "
                f"recorded, {made['amount']} {made['currency']} at the provider"
            )
        if refund.status == RefundStatus.SUCCEEDED and made["status"] not in (
            "succeeded",
            "failed",
        ):
            problems.append(
                f"refund {refund.provider_refund_id}: recorded succeeded, {made['status']} there"
            )
    return problems


def payout_problems(standin: Any = None) -> list[str]:
    """The money invariant, per vendor and for the platform (see the module's docstring)."""
    if not apps.is_installed("marketlink.payouts"):
        return []
    from payouts_money import money_problems

    return money_problems(standin)
