"""Refunds and disputes: money going back to the customer, asked for by the merchant (refunds)
or taken by the customer's bank (disputes).

A new refund's status is ``status_for_new`` ("succeeded", as for cards usually; "pending" or
"requires_action" to settle later with ``settle()``). A refund that did not go through gives the
charge its amount back, as Stripe's does."""

from collections.abc import Mapping

from marketlink.testing.stripe import lists
from marketlink.testing.stripe.common import JSONObject, StandInError, Store, new_id
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.params import (
    as_int,
    as_str,
    metadata,
    one_of,
    only,
    optional_str,
    required,
)

_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_LIST_PARAMS = {"payment_intent", "charge", *lists.PAGE_PARAMS}


class Refunds:
    def __init__(self, store: Store, events: Events) -> None:
        self._store = store
        self._events = events
        self.status_for_new = "succeeded"

    def create(self, params: JSONObject) -> JSONObject:
        """``POST /v1/refunds``."""
        only(params, {"payment_intent", "amount", "reason", "metadata", "expand"})
        intent_id = as_str(required(params, "payment_intent"), "payment_intent")
        amount = as_int(params["amount"], "amount") if "amount" in params else None
        reason = one_of(params["reason"], _REASONS, "reason") if "reason" in params else None
        return self.refund(intent_id, amount, reason, metadata(params, "metadata"))

    def page(self, params: JSONObject) -> JSONObject:
        """``GET /v1/refunds``, filtered by ``payment_intent`` and ``charge``; a filter naming
        no such object is a 404, as Stripe answers it."""
        only(params, _LIST_PARAMS)
        intent_id = optional_str(params, "payment_intent")
        charge_id = optional_str(params, "charge")
        if intent_id is not None:
            self._store.get("payment_intent", intent_id, "payment_intent")
        if charge_id is not None:
            self._store.get("charge", charge_id, "charge")
        return lists.page(
            self._newest_first(),
            params,
            url="/v1/refunds",
            object_type="refund",
            keep=lambda refund: (
                intent_id in (None, refund["payment_intent"])
                and charge_id in (None, refund["charge"])
            ),
        )

    def of_charge(self, charge_id: str) -> JSONObject:
        """A charge's ``refunds`` when expanded: like any list Stripe expands, only its first
        page (the 10 newest), ``has_more`` saying there are more to list with ``page``."""
        return lists.page(
            self._newest_first(),
            {},
            url=f"/v1/charges/{charge_id}/refunds",
            object_type="refund",
            keep=lambda refund: refund["charge"] == charge_id,
        )

    def _newest_first(self) -> list[JSONObject]:
        return lists.newest_first(
            obj for obj in self._store.objects.values() if obj["object"] == "refund"
        )

    def refund(
        self, intent_id: str, amount: int | None, reason: str | None, meta: Mapping[str, str]
    ) -> JSONObject:
        intent = self._store.get("payment_intent", intent_id, "payment_intent")
        if intent["status"] != "succeeded":
            raise StandInError(
                400,
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge = self._store.objects[intent["latest_charge"]]
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining == 0:
            raise StandInError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = remaining if amount is None else amount
        if amount < 1:
            raise StandInError(400, "Invalid positive integer", param="amount")
        if amount > remaining:
            raise StandInError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                param="amount",
                code="amount_too_large",
            )
        refund = self._store.add(
            {
                "id": new_id("re"),
                "object": "refund",
                "livemode": False,
                "created": self._store.now(),
                "amount": amount,
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent_id,
                "reason": reason,
                "metadata": dict(meta),
                "status": self.status_for_new,
            }
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._events.emit("charge.refunded", charge)
        self._events.emit("refund.created", refund)
        return refund

    def settle(self, refund_id: str, status: str) -> JSONObject:
        if status not in {"succeeded", "failed", "canceled"}:
            raise ValueError(f"a refund cannot settle as {status!r}")
        refund = self._store.get("refund", refund_id, "refund")
        refund["status"] = status
        if status != "succeeded":
            charge = self._store.objects[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = False
            if status == "failed":
                refund["failure_reason"] = "lost_or_stolen_card"
                self._events.emit("refund.failed", refund)
        self._events.emit("refund.updated", refund)
        self._events.emit("charge.refund.updated", refund)
        return refund

    def dispute(self, intent_id: str, reason: str) -> JSONObject:
        intent = self._store.get("payment_intent", intent_id, "payment_intent")
        charge = self._store.objects[intent["latest_charge"]]
        dispute = self._store.add(
            {
                "id": new_id("dp"),
                "object": "dispute",
                "livemode": False,
                "created": self._store.now(),
                "amount": charge["amount"],
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": intent_id,
                "reason": reason,
                "status": "needs_response",
                "metadata": {},
            }
        )
        charge["disputed"] = True
        self._events.emit("charge.dispute.created", dispute)
        return dispute

    def close_dispute(self, dispute_id: str, *, won: bool) -> JSONObject:
        dispute = self._store.get("dispute", dispute_id, "dispute")
        dispute["status"] = "won" if won else "lost"
        self._events.emit("charge.dispute.closed", dispute)
        return dispute
