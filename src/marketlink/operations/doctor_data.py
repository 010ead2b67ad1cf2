"""The checks of marketlink's own data that ``marketlink doctor`` runs once the database is
reachable and migrated: orders stuck, events and payments flagged for a person, the stock."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from marketlink.operations.findings import Check, Finding
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.orders.selectors import stock_ledger_mismatches
from marketlink.outbox.selectors import OVERDUE_AFTER, entries_failed, entries_overdue
from marketlink.payments.models import PaymentEvent, Refund, RefundStatus
from marketlink.payments.selectors import (
    disputes_needing_attention,
    invoice_grace_period,
    orders_owing_invoice,
    refund_grace_period,
    refunds_needing_attention,
    refunds_to_follow_up,
)

# The expiry job runs every minute: a reservation lapsed for longer has no job releasing it.
RESERVATION_GRACE = timedelta(minutes=5)
SHOWN = 5


def _some(ids: list[str], total: int) -> str:
    return ", ".join(ids) + (f" and {total - len(ids)} more" if total > len(ids) else "")


def check_reservations() -> Finding:
    lapsed = RepairOrder.objects.filter(
        status=OrderStatus.PENDING, expires_at__lt=timezone.now() - RESERVATION_GRACE
    )
    count = lapsed.count()
    if not count:
        return Finding("reservations", "ok", "No pending order is past its reservation.")
    ids = [str(pk) for pk in lapsed.order_by("expires_at").values_list("pk", flat=True)[:SHOWN]]
    return Finding(
        "reservations",
        "warn",
        f"{count} pending order(s) past their reservation by over "
        f"{int(RESERVATION_GRACE.total_seconds() // 60)} minutes (bookings still reclaim "
        f"their units): {_some(ids, count)}.",
        "Run `marketlink orders expire`, and keep a consumer with its scheduler running.",
    )


def check_invoices() -> Finding:
    """Orders whose invoice nothing is sending (``orders_owing_invoice``, reconcile's own rule):
    its outbox entry overdue past the grace period, or failed for good."""
    owing = orders_owing_invoice()
    count = owing.count()
    if not count:
        return Finding("invoices", "ok", "Every invoice owed is sent or on its way.")
    minutes = int(invoice_grace_period().total_seconds() // 60)
    ids = [str(pk) for pk in owing.order_by("created_at").values_list("pk", flat=True)[:SHOWN]]
    return Finding(
        "invoices",
        "fail",
        f"{count} order(s) owe an invoice with nothing under way for over {minutes} minutes: "
        f"{_some(ids, count)}.",
        "Run `marketlink invoices resend --stuck` (or `marketlink reconcile`): it sends them "
        "in this process; a failed invoice's last error is in the admin.",
    )


def check_outbox() -> Finding:
    """Side effects owed (invoices, refund asks, transfers) that no drainer runs, or that
    failed for good."""
    overdue = entries_overdue(by=OVERDUE_AFTER)
    late = overdue.count()
    if late:
        oldest = overdue.order_by("due_at").first()
        assert oldest is not None
        minutes = int((timezone.now() - oldest.due_at).total_seconds() // 60)
        return Finding(
            "outbox",
            "fail",
            f"{late} side effect(s) owed are overdue (the oldest, {oldest.dedupe_key}, by "
            f"{minutes} minutes): no drainer runs them.",
            "Start a Huey consumer with its scheduler (`manage.py run_huey`); meanwhile "
            "`marketlink outbox retry` runs them in this process.",
        )
    failed = entries_failed()
    count = failed.count()
    if count:
        keys = list(failed.order_by("-updated_at").values_list("dedupe_key", flat=True)[:SHOWN])
        return Finding(
            "outbox",
            "warn",
            f"{count} side effect(s) failed for good: {_some(keys, count)}.",
            "`marketlink outbox list --status failed` says why; fix the cause, then "
            "`marketlink outbox retry`.",
        )
    return Finding("outbox", "ok", "Every side effect owed is done or on its way.")


def check_events() -> Finding:
    flagged = PaymentEvent.objects.filter(needs_attention=True)
    count = flagged.count()
    if not count:
        return Finding("events", "ok", "No payment event is flagged for attention.")
    ids = list(flagged.order_by("-created_at").values_list("event_id", flat=True)[:SHOWN])
    return Finding(
        "events",
        "warn",
        f"{count} payment event(s) flagged for attention: {_some(ids, count)}.",
        "`marketlink webhooks list --attention` says why; fix the cause, then "
        "`marketlink webhooks replay EVENT_ID`.",
    )


def check_refunds_and_disputes() -> Finding:
    # Asked for and not made: untouched past the grace period (nothing is asking), or refused
    # by the provider (a person decides): either way the customer is still charged.
    never_made = Refund.objects.filter(status=RefundStatus.REQUESTED).filter(
        Q(pk__in=refunds_to_follow_up().values("pk")) | Q(needs_attention=True)
    )
    stuck = never_made.count()
    if stuck:
        minutes = int(refund_grace_period().total_seconds() // 60)
        ids = [str(pk) for pk in never_made.order_by("created_at").values_list("pk", flat=True)]
        return Finding(
            "refunds and disputes",
            "fail",
            f"{stuck} refund(s) marketlink decided to make were not made: refused by the "
            f"provider, or nothing under way for over {minutes} minutes (the customer is still "
            "charged): "
            f"{_some(ids[:SHOWN], stuck)}.",
            "A refused one's reason is on the refund (admin, Payments: refunds); fix it, then "
            "`marketlink outbox retry --kind refund` (or `marketlink reconcile`) asks again; keep "
            "a consumer with its scheduler running.",
        )
    refunds, disputes = refunds_needing_attention().count(), disputes_needing_attention().count()
    if not refunds and not disputes:
        return Finding("refunds and disputes", "ok", "None is flagged for attention.")
    return Finding(
        "refunds and disputes",
        "warn",
        f"{refunds} refund(s) and {disputes} dispute(s) flagged for attention.",
        "Look at them in the admin (Payments: refunds, disputes) and settle each at the provider.",
    )


def check_stock() -> Finding:
    mismatches = stock_ledger_mismatches()
    if not mismatches:
        return Finding(
            "stock", "ok", "Every variant's units add up (on sale + held + used = made available)."
        )
    lines = [
        f"{line.variant_id}: stock {line.stock}, held {line.held}, used {line.used}, made "
        f"available {line.units_made_available}"
        for line in mismatches[:SHOWN]
    ]
    return Finding(
        "stock",
        "fail",
        f"{len(mismatches)} variant(s) whose units do not add up: {_some(lines, len(mismatches))}.",
        "Read those variants' order history in the admin, then correct the stock with the "
        "variant PATCH's stock_adjustment.",
    )


def check_payouts() -> Finding:
    """Vendors customers cannot book because their payout account is not ready (the gate),
    releases that failed, debts and flagged payouts."""
    from django.apps import apps

    from marketlink import conf

    if not conf.get().PAYOUTS_ENABLED or not apps.is_installed("marketlink.payouts"):
        return Finding("payouts", "ok", "Payouts are off.")
    from marketlink.catalog.selectors import selling
    from marketlink.payouts.models import Payout, PayoutStatus
    from marketlink.vendors.models import VendorProfile

    gated = VendorProfile.objects.filter(selling(), payouts_ready=False)
    failed = Payout.objects.filter(status=PayoutStatus.FAILED)
    flagged = Payout.objects.filter(needs_attention=True).exclude(status=PayoutStatus.FAILED)
    debts = Payout.objects.filter(status=PayoutStatus.DEBT)
    counts = [gated.count(), failed.count(), flagged.count(), debts.count()]
    if not any(counts):
        return Finding("payouts", "ok", "Every selling vendor can be paid; nothing is flagged.")
    names = [
        str(v)
        for v in gated.order_by("business_name").values_list("business_name", flat=True)[:SHOWN]
    ]
    parts = []
    if counts[0]:
        parts.append(
            f"{counts[0]} selling vendor(s) cannot be booked until their payout account "
            f"is ready: {_some(names, counts[0])}"
        )
    if counts[1]:
        parts.append(f"{counts[1]} release(s) failed for good")
    if counts[2] or counts[3]:
        parts.append(f"{counts[3]} debt(s) and {counts[2]} other payout(s) flagged")
    return Finding(
        "payouts",
        "fail" if counts[1] else "warn",
        "; ".join(parts) + ".",
        "Gated vendors onboard with POST /vendors/payouts/onboarding/; `marketlink payouts list "
        "--status failed` (or debt) says why, `marketlink payouts release ORDER_ID` once fixed; "
        "debts are settled in the admin.",
    )


DATA_CHECKS: list[Check] = [
    check_reservations,
    check_invoices,
    check_outbox,
    check_events,
    check_refunds_and_disputes,
    check_stock,
    check_payouts,
]
