"""Driving the outbox in tests: owe an effect as a state change would, and drain what is due,
here, as a consumer's drainer would (a test's transaction never commits, so nothing that waits
for a commit runs by itself)."""

from __future__ import annotations

from typing import Any

from marketlink.outbox.drainer import drain
from marketlink.outbox.services import outbox_write


def send_invoice(order: Any) -> None:
    """``order``'s invoice, owed (as its payment owes it) and sent now by the drainer."""
    outbox_write(kind="invoice", subject_id=getattr(order, "pk", order), wake=False)
    drain(kinds=["invoice"])


__all__ = ["drain", "send_invoice"]
