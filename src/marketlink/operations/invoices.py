"""``marketlink invoices resend``: send now, in this process, the invoice of named orders, or of
every order whose invoice nothing is sending (the ones reconcile finds), never a second invoice
for an order whose invoice was sent unless told to. A consumer that is down stops nothing."""

from __future__ import annotations

import uuid
from functools import partial
from typing import Annotated, Any

import typer

from marketlink.operations.options import DryRun, Json, OperatorAs, acting_as
from marketlink.operations.report import Report, progress, say
from marketlink.operations.runner import operation, run_maybe_dry, setup_django

invoices_app = typer.Typer(
    help="Invoices: send again the ones still owed, or named ones.", no_args_is_help=True
)


COLUMNS = ("order", "order_status", "invoice_before", "invoice_after", "outcome")


@invoices_app.command("resend")
def invoices_resend(
    order_ids: Annotated[
        list[str] | None,
        typer.Argument(help="The orders whose invoice to send again.", show_default=False),
    ] = None,
    stuck: Annotated[
        bool,
        typer.Option("--stuck", help="Every invoice not sent past the grace period."),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Also invoices already sent (the customer gets a second one)."),
    ] = False,
    dry_run: DryRun = False,
    as_json: Json = False,
    operator: OperatorAs = None,
) -> None:
    """Send the invoice now. An invoice that was sent is skipped unless --force, and so is one a
    drainer is sending right now, so a second run changes nothing."""
    if not (order_ids or stuck):
        raise typer.BadParameter("name ORDER_IDs, or choose --stuck")
    wanted = [_uuid(value) for value in order_ids or []]
    setup_django()
    from marketlink.orders.models import RepairOrder
    from marketlink.payments.selectors import orders_owing_invoice

    report = Report(title="Invoices", columns=COLUMNS, dry_run=dry_run)
    with operation(report, as_json=as_json), acting_as(operator):
        for key in ("sent", "not_sent", "already_sent", "in_flight", "not_owed", "not_found"):
            report.summary[key] = 0
        chosen = {
            o.pk: o for o in RepairOrder.objects.filter(pk__in=wanted).select_related("invoice")
        }
        for missing in (order_id for order_id in wanted if order_id not in chosen):
            report.count("not_found")
            report.add(order=str(missing), outcome="no such order")
            report.needs_attention("some named orders do not exist")
        if stuck:
            chosen |= {o.pk: o for o in orders_owing_invoice().order_by("-created_at")}
        say(
            f"{'Dry run: would send' if dry_run else 'Sending'} the invoice of up to "
            f"{len(chosen)} order(s){' (sent ones too: --force)' if force else ''}.",
            as_json=as_json,
        )
        for order in progress(chosen.values(), total=len(chosen), description="invoices"):
            _resend_one(report, order, force=force, dry_run=dry_run)


def _resend_one(report: Report, order: Any, *, force: bool, dry_run: bool) -> None:
    from marketlink.payments.models import Invoice
    from marketlink.payments.resend import Resend, invoice_resend

    invoice = getattr(order, "invoice", None)
    before = invoice.status if invoice is not None else None
    outcome = run_maybe_dry(dry_run, partial(invoice_resend, order=order, force=force))
    after = Invoice.objects.filter(order=order).values_list("status", flat=True).first()
    counted = {
        Resend.SENT: "sent",
        Resend.SENDING: "sent",
        Resend.NOT_SENT: "not_sent",
        Resend.ALREADY_SENT: "already_sent",
        Resend.IN_FLIGHT: "in_flight",
        Resend.NOT_OWED: "not_owed",
    }[outcome]
    report.count(counted)
    detail = "would be sent" if dry_run and outcome == Resend.SENDING else str(outcome)
    if outcome == Resend.ALREADY_SENT:
        detail += "; --force to send a second one"
    elif outcome == Resend.NOT_SENT:
        error = Invoice.objects.filter(order=order).values_list("last_error", flat=True).first()
        detail += f": {error}" if error else ""
        report.needs_attention("some invoices could not be sent: see their outcome")
    report.add(
        order=str(order.pk),
        order_status=order.status,
        invoice_before=before,
        invoice_after=before if dry_run else after,
        outcome=detail,
    )


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an order id", param_hint="ORDER_ID") from None
