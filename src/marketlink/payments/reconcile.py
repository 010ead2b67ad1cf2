"""Reconciliation: asking the provider about orders a lost webhook may have left wrong, and
applying what the webhook would have, through the same handlers.

Five checks, each over its orders newest first, in keyset-paginated batches (a site with many
orders is never read into one list, and orders that change while the run goes on neither
repeat nor shift the pages):

- ``pending``: pending orders with a checkout: paid at the provider (the order is marked paid),
  or expired there after the reservation lapsed (cancelled);
- ``released``: cancelled or failed orders with a checkout, changed in the window: paid at the
  provider after all (the late payment takes its unit again, or is refunded);
- ``paid``: paid or processing orders paid in the window: refunded at the provider (e.g. in its
  dashboard) without marketlink hearing of it;
- ``invoices``: orders whose invoice nothing is sending (its outbox entry overdue past the grace
  period: no drainer runs; or failed for good): sent now, in this process (after the commit, so
  a dry run sends nothing); one that failed for good, or fails again, is for a person;
- ``refunds``: orders with a refund asked for (or pending) and untouched past the grace period:
  the provider's refunds of the payment are read and recorded, and a refund still never made is
  asked again now, in this process, through its outbox entry (after the commit, so a dry run
  never asks the provider for money).

The provider is asked first, outside any transaction; what its answer changes is then written
by the handlers a webhook would run, in a transaction the caller may roll back (a dry run).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from marketlink.orders.models import ChangeSource, OrderStatus, RepairOrder
from marketlink.outbox.selectors import entries_of
from marketlink.outbox.services import outbox_retry, outbox_run_now
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import (
    CheckoutSession,
    EventKind,
    GatewayError,
    ProviderEvent,
    ProviderRefund,
)
from marketlink.payments.handlers import HANDLERS, release_if_pending
from marketlink.payments.models import Invoice, InvoiceStatus, Refund, RefundStatus
from marketlink.payments.refunds import REFUND_KIND
from marketlink.payments.resend import Resend, invoice_resend
from marketlink.payments.rules import RELEASED_STATUSES, PermanentProblem
from marketlink.payments.selectors import (
    orders_owing_invoice,
    payment_given_back,
    refunds_to_follow_up,
)

T = TypeVar("T")

BATCH = 200
# After this many provider failures in a row the run stops asking: each failure costs the SDK's
# retries, and an outage would otherwise hold an operator (or the periodic job) for minutes.
PROVIDER_DOWN_AFTER = 3


class Kind(StrEnum):
    """What reconciliation found wrong with an order."""

    PENDING_PAID = "pending_paid"
    PENDING_EXPIRED = "pending_expired"
    RELEASED_PAID_LATE = "released_paid_late"
    REFUNDED_AT_PROVIDER = "refunded_at_provider"
    INVOICE_NOT_SENT = "invoice_not_sent"
    REFUND_UNSETTLED = "refund_unsettled"


class Result(StrEnum):
    AGREES = "agrees"
    FIXED = "fixed"
    NEEDS_ATTENTION = "needs_attention"
    NOT_CHECKED = "could_not_check"


@dataclass(frozen=True)
class Outcome:
    """One order checked: what differed (``kind``; none when the order agrees) and what was
    done, with the order's status before and after."""

    check: str
    order_id: uuid.UUID
    result: Result
    before: str
    after: str
    kind: Kind | None = None
    detail: str = ""


@dataclass(frozen=True)
class LimitReached:
    """The check stopped at the limit; more of its orders were left unchecked."""

    check: str
    limit: int


Finding = tuple[Kind, Result, str] | None


@dataclass(frozen=True)
class Check:
    name: str
    candidates: Callable[[datetime], QuerySet[RepairOrder]]
    # The provider's answer about an order (``None``: the check asks nothing).
    ask: Callable[[RepairOrder], Any] | None
    fix: Callable[[RepairOrder, Any, str], Finding]


def _call(action: Callable[[], T]) -> T:
    return action()


def reconcile_plan(*, since: datetime) -> dict[str, int]:
    """How many orders each check will look at (what a run announces before it starts)."""
    return {check.name: check.candidates(since).count() for check in CHECKS}


def reconcile_orders(
    *,
    since: datetime,
    limit: int | None = None,
    source: str = ChangeSource.CLI,
    run: Callable[[Callable[[], Outcome]], Outcome] = _call,
) -> Iterator[Outcome | LimitReached]:
    """Check every order that can be wrong, check by check, yielding each order's outcome (and
    where a check stopped at ``limit``). ``run`` runs each order's writes: a dry run passes one
    that rolls them back."""
    failures_in_a_row = 0
    for check in CHECKS:
        for count, order in enumerate(_newest_first(check.candidates(since))):
            if limit is not None and count == limit:
                yield LimitReached(check.name, limit)
                break
            before = order.status
            answer = None
            if check.ask is not None:
                if failures_in_a_row >= PROVIDER_DOWN_AFTER:
                    detail = f"not asked: the provider failed {failures_in_a_row} times in a row"
                    yield Outcome(
                        check.name, order.id, Result.NOT_CHECKED, before, before, None, detail
                    )
                    continue
                try:
                    answer = check.ask(order)
                except GatewayError as exc:
                    failures_in_a_row += 1
                    yield Outcome(
                        check.name, order.id, Result.NOT_CHECKED, before, before, None, _why(exc)
                    )
                    continue
                failures_in_a_row = 0
            yield run(partial(_fix, check, order, answer, source))


def _fix(check: Check, order: RepairOrder, answer: Any, source: str) -> Outcome:
    before = order.status
    finding = check.fix(order, answer, source)
    if finding is None:
        return Outcome(check.name, order.id, Result.AGREES, before, before)
    kind, result, detail = finding
    after = RepairOrder.objects.values_list("status", flat=True).get(pk=order.pk)
    return Outcome(check.name, order.id, result, before, after, kind, detail)


def _newest_first(orders: QuerySet[RepairOrder]) -> Iterator[RepairOrder]:
    """``orders`` newest first, a batch at a time, each page starting after the last order of
    the one before (keyset pagination: no OFFSET, so nothing is skipped or repeated when
    orders leave the set as they are fixed)."""
    ordered = orders.order_by("-created_at", "-id")
    page = ordered
    while True:
        batch = list(page[:BATCH])
        yield from batch
        if len(batch) < BATCH:
            return
        last = batch[-1]
        page = ordered.filter(
            Q(created_at__lt=last.created_at) | Q(created_at=last.created_at, id__lt=last.id)
        )


def _why(exc: GatewayError) -> str:
    cause = exc.__cause__
    return f"could not ask the provider: {exc.message}" + (f" ({cause})" if cause else "")


def _handle(
    order: RepairOrder, event: ProviderEvent, source: str, kind: Kind
) -> tuple[Kind, Result, str]:
    """What the webhook would have done with ``event``; a problem it would have flagged for
    staff (an amount mismatch, a partial refund) is one for a person here too."""
    try:
        with transaction.atomic():
            return kind, Result.FIXED, HANDLERS[event.kind](order, event, source)
    except PermanentProblem as exc:
        return kind, Result.NEEDS_ATTENTION, str(exc)


def _paid_event(order: RepairOrder, session: CheckoutSession) -> ProviderEvent:
    """What the lost checkout-completed event would have said."""
    return ProviderEvent(
        kind=EventKind.CHECKOUT_COMPLETED,
        event_id=f"reconcile-{session.id}",
        provider_type="reconcile",
        order_ref=str(order.id),
        session_id=session.id,
        payment_intent_id=session.payment_intent_id,
        amount_minor=session.amount_minor,
        currency=session.currency,
        paid=True,
    )


def _ask_checkout(order: RepairOrder) -> CheckoutSession:
    return get_gateway().fetch_checkout(order.checkout_session_id or "")


def _ask_refunds(order: RepairOrder) -> tuple[ProviderRefund, ...]:
    return get_gateway().fetch_refunds(order.payment_intent_id or "")


def _pending(since: datetime) -> QuerySet[RepairOrder]:
    return RepairOrder.objects.filter(status=OrderStatus.PENDING, checkout_session_id__isnull=False)


def _fix_pending(order: RepairOrder, session: CheckoutSession, source: str) -> Finding:
    if session.payment_status == "paid":
        return _handle(order, _paid_event(order, session), source, Kind.PENDING_PAID)
    if session.status == "expired" and order.expires_at <= timezone.now():
        note = release_if_pending(order, OrderStatus.CANCELLED, source, "checkout expired")
        return Kind.PENDING_EXPIRED, Result.FIXED, note
    return None


def _released(since: datetime) -> QuerySet[RepairOrder]:
    return RepairOrder.objects.filter(
        status__in=RELEASED_STATUSES, checkout_session_id__isnull=False, updated_at__gte=since
    )


def _fix_released(order: RepairOrder, session: CheckoutSession, source: str) -> Finding:
    if session.payment_status != "paid":
        return None
    intent = session.payment_intent_id
    if intent and payment_given_back(intent):
        return None  # the late payment found no unit left and is being given back already
    return _handle(order, _paid_event(order, session), source, Kind.RELEASED_PAID_LATE)


def _paid(since: datetime) -> QuerySet[RepairOrder]:
    return RepairOrder.objects.filter(
        status__in=[OrderStatus.PAID, OrderStatus.PROCESSING],
        payment_intent_id__isnull=False,
        paid_at__gte=since,
    )


def _fix_refunded(order: RepairOrder, listed: tuple[ProviderRefund, ...], source: str) -> Finding:
    intent = order.payment_intent_id or ""

    def recorded() -> set[tuple[str | None, str]]:
        rows = Refund.objects.filter(payment_intent_id=intent)
        return set(rows.values_list("provider_refund_id", "status"))

    before = recorded()
    if all((refund.id, refund.status) in before for refund in listed):
        return None
    finding = _handle(
        order, _refunds_event(order, intent, listed), source, Kind.REFUNDED_AT_PROVIDER
    )
    # What the provider says that its own rules keep out (a final row's late news) agrees.
    return finding if finding[1] != Result.FIXED or recorded() != before else None


def _refunds_event(
    order: RepairOrder, intent: str, listed: tuple[ProviderRefund, ...]
) -> ProviderEvent:
    """What the lost ``charge.refunded`` event would have said, once its refunds were read."""
    return ProviderEvent(
        kind=EventKind.CHARGE_REFUNDED,
        event_id=f"reconcile-refunds-{intent}",
        provider_type="reconcile",
        order_ref=str(order.id),
        payment_intent_id=intent,
        currency=order.currency,
        refunds=listed,
    )


def _quiet_refunds(since: datetime) -> QuerySet[RepairOrder]:
    return RepairOrder.objects.filter(pk__in=refunds_to_follow_up().values("order"))


def _ask_quiet_refunds(order: RepairOrder) -> dict[str, tuple[ProviderRefund, ...]]:
    intents = set(refunds_to_follow_up().filter(order=order).values_list("payment_intent_id"))
    return {intent: get_gateway().fetch_refunds(intent) for (intent,) in intents}


def _fix_quiet_refunds(
    order: RepairOrder, listed: dict[str, tuple[ProviderRefund, ...]], source: str
) -> Finding:
    said = []
    for intent, refunds in listed.items():
        event = _refunds_event(order, intent, refunds)
        kind, result, detail = _handle(order, event, source, Kind.REFUND_UNSETTLED)
        if result == Result.NEEDS_ATTENTION:
            return kind, result, detail
        said.append(detail)
    requested = refunds_to_follow_up().filter(order=order, status=RefundStatus.REQUESTED)
    never_made = list(requested.values_list("pk", flat=True))
    asked: list[str] = []

    def ask_again(refund_pk: uuid.UUID) -> None:
        entry = entries_of(REFUND_KIND, refund_pk).values_list("pk", flat=True)
        outbox_retry(ids=list(entry), wake=False)
        outbox_run_now(kind=REFUND_KIND, subject_id=refund_pk)
        status = Refund.objects.values_list("status", flat=True).get(pk=refund_pk)
        asked.append(f"refund {refund_pk} asked again: {status}")

    for refund_pk in never_made:
        # A provider write: after the commit, so a dry run's rollback never asks for money.
        transaction.on_commit(partial(ask_again, refund_pk))
    if never_made and not asked:
        said.append(f"{len(never_made)} refund(s) never made: to be asked again once committed")
    return Kind.REFUND_UNSETTLED, Result.FIXED, "; ".join(said + asked)


def _owing_invoice(since: datetime) -> QuerySet[RepairOrder]:
    return orders_owing_invoice()


def _fix_invoice(order: RepairOrder, _: None, source: str) -> Finding:
    invoice = getattr(order, "invoice", None)
    if invoice is not None and invoice.status == InvoiceStatus.FAILED:
        error = f" ({invoice.last_error[:200]})" if invoice.last_error else ""
        return (
            Kind.INVOICE_NOT_SENT,
            Result.NEEDS_ATTENTION,
            f"invoice failed for good{error}: `marketlink invoices resend ORDER_ID` after "
            "fixing the cause",
        )
    # Due, and no drainer ran it (no consumer, or no scheduler): sent here instead.
    outcome = invoice_resend(order=order)
    if outcome in (Resend.ALREADY_SENT, Resend.IN_FLIGHT, Resend.NOT_OWED):
        return None  # sent, or being sent, meanwhile
    if outcome == Resend.NOT_SENT:
        invoice = Invoice.objects.get(order=order)
        return (
            Kind.INVOICE_NOT_SENT,
            Result.NEEDS_ATTENTION,
            f"invoice not sent: {invoice.last_error[:200]}; it is tried again with a back-off",
        )
    return Kind.INVOICE_NOT_SENT, Result.FIXED, f"invoice {outcome} (no drainer had run it)"


CHECKS = (
    Check("pending", _pending, _ask_checkout, _fix_pending),
    Check("released", _released, _ask_checkout, _fix_released),
    Check("paid", _paid, _ask_refunds, _fix_refunded),
    Check("invoices", _owing_invoice, None, _fix_invoice),
    Check("refunds", _quiet_refunds, _ask_quiet_refunds, _fix_quiet_refunds),
)
