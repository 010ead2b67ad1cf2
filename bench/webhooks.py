"""The webhook scenarios of ``bench/run.py``: how the deliveries are laid out for the load client,
and the exactly-once checks made in the database once the Huey consumer sent the invoices.

Each event is delivered twice, each copy signed when it is built (a Stripe retry carries a new
timestamp). Half the pairs are written together by two connections (the load client's
rendezvous), so the second copy arrives while the first is being processed; in the other half
one connection sends the second copy once the first's answer is in, so it finds the event
handled. The pairs are shuffled together, so both kinds run interleaved over the same load.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from bench.loadclient import LoadResult, build_request

Slot = tuple[bytes | list[bytes], Any]  # one load client request (or sequence) and its tag(s)


def order_of(event: dict[str, Any]) -> str:
    return str(event["data"]["object"]["metadata"]["order_id"])


def deliveries(
    events: list[dict[str, Any]], sign: Callable[[bytes], str], host: str, rng: random.Random
) -> list[Slot]:
    """The load's slots: two copies of every event, tagged ``(event index, copy)``; even-numbered
    events as a concurrent pair (two slots meeting at the rendezvous), odd-numbered ones as one
    slot sending both copies in turn."""

    def post(payload: bytes) -> bytes:
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload),
        }
        return build_request("POST", "/api/webhooks/payment/", host, payload, headers)

    groups: list[list[Slot]] = []
    for index, event in enumerate(events):
        payload = json.dumps(event, indent=2).encode()  # as Stripe sends it, pretty-printed
        first, second = post(payload), post(payload)
        if together(index):
            groups.append([(first, (index, 0)), (second, (index, 1))])
        else:
            groups.append([([first, second], [(index, 0), (index, 1)])])
    rng.shuffle(groups)
    return [slot for group in groups for slot in group]


def together(index: int) -> bool:
    return index % 2 == 0


def rendezvous(tag: tuple[int, int]) -> Hashable | None:
    """The load client's pairing: the copies of an even-numbered event meet."""
    return tag[0] if together(tag[0]) else None


def overlap(result: LoadResult) -> tuple[float, float]:
    """The share of concurrent pairs whose copies were in flight together (one written before
    the other was answered), and of sequential pairs whose second copy was written after the
    first's answer."""
    spans: dict[int, list[tuple[float, float]]] = {}
    for response in result.responses:
        spans.setdefault(response.tag[0], []).append((response.sent, response.received))
    met = [0, 0]
    count = [0, 0]
    for index, pair in spans.items():
        if len(pair) != 2:
            continue
        (_, a_received), (b_sent, _) = sorted(pair)
        kind = 0 if together(index) else 1
        count[kind] += 1
        met[kind] += b_sent < a_received if kind == 0 else b_sent >= a_received
    return met[0] / max(1, count[0]), met[1] / max(1, count[1])


QUEUE_SETTLE_S = 5.0  # several times OUTBOX_WAKE_DELAY's default of 1 s


def wait_for_invoices(order_ids: list[Any], timeout: float) -> float:
    """Seconds until the consumer marked every order's invoice sent and recorded its outbox
    entry done (or ``timeout`` passed): a batch's entries are recorded after its last message
    went, a moment after its invoices read sent. Then up to ``QUEUE_SETTLE_S`` more for Huey's
    queue and schedule to empty, not counted in the seconds returned."""
    from huey.contrib.djhuey import HUEY

    from marketlink.payments.models import Invoice, InvoiceStatus

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        sent = Invoice.objects.filter(order_id__in=order_ids, status=InvoiceStatus.SENT).count()
        if sent >= len(order_ids) and not entries_not_done(order_ids).exists():
            break
        time.sleep(0.1)
    drained = time.monotonic() - started
    # A wake scheduled ``OUTBOX_WAKE_DELAY`` after a late commit may still wait with the work
    # done: it finds nothing and goes. Only a task still there after that is left over.
    settle_by = time.monotonic() + QUEUE_SETTLE_S
    while HUEY.pending_count() + HUEY.scheduled_count() and time.monotonic() < settle_by:
        time.sleep(0.1)
    return drained


def entries_not_done(order_ids: list[Any]) -> Any:
    """The outbox entries these orders owe that are not recorded done."""
    from marketlink.outbox.models import OutboxEntry

    subjects = [str(order_id) for order_id in order_ids]
    return OutboxEntry.objects.filter(subject_id__in=subjects).exclude(status="done")


def payment_problems(
    orders: list[Any], events: list[dict[str, Any]], initial_stock: int
) -> list[str]:
    """What the database says went wrong with the payments: every order paid once (one
    pending -> paid change), then moved to processing once by its invoice; every event stored
    once, processed once, tied to its order; stock = initial - orders."""
    from marketlink.catalog.models import ServiceVariant
    from marketlink.orders.models import OrderStatus, OrderStatusChange, RepairOrder
    from marketlink.payments.models import PaymentEvent

    ids = [order.id for order in orders]
    problems = []
    statuses = Counter(RepairOrder.objects.filter(id__in=ids).values_list("status", flat=True))
    if statuses != Counter({OrderStatus.PROCESSING: len(ids)}):
        problems.append(f"order statuses {dict(statuses)}, expected {len(ids)} processing")
    history = Counter(
        OrderStatusChange.objects.filter(order_id__in=ids).values_list(
            "order_id", "from_status", "to_status"
        )
    )
    once = sum(
        1
        for i in ids
        if history.get((i, "pending", "paid")) == 1 and history.get((i, "paid", "processing")) == 1
    )
    if once != len(ids) or sum(history.values()) != 2 * len(ids):
        problems.append(
            f"{once} of {len(ids)} orders paid once then processing once; "
            f"{sum(history.values())} status changes in all"
        )
    event_order = {event["id"]: order_of(event) for event in events}
    rows = list(
        PaymentEvent.objects.filter(event_id__in=event_order).values_list(
            "event_id", "status", "attempts", "needs_attention", "order_id"
        )
    )
    processed = sum(
        1
        for event_id, status, attempts, attention, order_id in rows
        if status == "processed"
        and attempts == 1
        and not attention
        and str(order_id) == event_order[event_id]
    )
    if len(rows) != len(events) or processed != len(events):
        problems.append(
            f"{len(events)} events: {len(rows)} stored, {processed} processed once for their order"
        )
    per_variant = Counter(order.variant_id for order in orders)
    stock = dict(ServiceVariant.objects.filter(id__in=per_variant).values_list("id", "stock"))
    if any(stock[v] != initial_stock - n for v, n in per_variant.items()):
        problems.append("stock + orders != initial stock")
    return problems


def invoice_problems(orders: list[Any]) -> tuple[int, list[str]]:
    """How many orders have their one invoice sent on the first try, and what went wrong: an
    invoice missing, failed or sent after a retry, an outbox entry not done, a wake left in
    Huey's queue or schedule."""
    from huey.contrib.djhuey import HUEY

    from marketlink.payments.models import Invoice, InvoiceStatus

    ids = [order.id for order in orders]
    invoices = Counter(Invoice.objects.filter(order_id__in=ids).values_list("status", "attempts"))
    once = invoices.get((InvoiceStatus.SENT, 1), 0)
    problems = []
    if once != len(ids):
        problems.append(f"invoices (status, attempts): {dict(invoices)} for {len(ids)} orders")
    owed = entries_not_done(ids)
    if owed.exists():
        problems.append(f"{owed.count()} outbox entries of these orders not done")
    left = HUEY.pending_count() + HUEY.scheduled_count()
    if left:
        problems.append(f"{left} tasks left in Huey's queue or schedule")
    return once, problems
