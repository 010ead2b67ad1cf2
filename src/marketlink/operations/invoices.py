"""``marketlink invoices send-owed``: send the invoices no task will send by itself, without
waiting for the periodic job."""

from __future__ import annotations

from typing import Annotated

import typer

from marketlink.operations.options import Json
from marketlink.operations.report import Report, say
from marketlink.operations.runner import operation, setup_django

invoices_app = typer.Typer(help="Invoices: send the ones still owed.", no_args_is_help=True)


@invoices_app.command("send-owed")
def invoices_send_owed_command(
    stuck_after: Annotated[
        int, typer.Option(min=0, help="Minutes an owed invoice must have waited untried.")
    ] = 30,
    as_json: Json = False,
) -> None:
    """Send the invoices no task will send by itself (a consumer killed mid-send, a task lost
    with the queue). One that fails again stays pending, or failed for staff if it cannot be
    sent; a second run finds none owed."""
    setup_django()
    from datetime import timedelta

    from marketlink.payments.invoices import InvoiceNotSent, invoice_send
    from marketlink.payments.selectors import invoices_owed

    report = Report(title="Owed invoices", columns=("order", "outcome"), summary={"owed": 0})
    with operation(report, as_json=as_json):
        say("Sending the invoices no task will send by itself.", as_json=as_json)
        for order_id in invoices_owed(stuck_after=timedelta(minutes=stuck_after)):
            try:
                outcome = invoice_send(order_id=str(order_id), last_try=False)
            except InvoiceNotSent as exc:
                outcome = f"not sent yet: {exc}"
                report.needs_attention()
            report.add(order=str(order_id), outcome=outcome)
            report.count("owed")
