"""Checkout Sessions in ``mode=payment`` with ``price_data`` line items, and what the customer
does on the hosted page: pay (at once, or later for bank debits), be declined, or let it expire.

``expires_at`` is checked as strictly as Stripe checks it (30 minutes to 24 hours after creation,
measured on arrival), but sessions never expire by the clock: tests call ``expire()``."""

from typing import Any

from marketlink.testing.stripe.common import JSONObject, StandInError, Store, new_id
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.intents import PaymentIntents
from marketlink.testing.stripe.params import (
    as_currency,
    as_dict,
    as_int,
    as_list,
    as_str,
    invalid,
    metadata,
    only,
    optional_str,
    required,
)

_MIN_EXPIRY = 30 * 60
_MAX_EXPIRY = 24 * 60 * 60
_CREATE_PARAMS = {
    "mode",
    "line_items",
    "metadata",
    "payment_intent_data",
    "client_reference_id",
    "success_url",
    "cancel_url",
    "expires_at",
    "customer_email",
    "expand",
}


class CheckoutSessions:
    def __init__(self, store: Store, intents: PaymentIntents, events: Events) -> None:
        self._store = store
        self._intents = intents
        self._events = events
        self._line_items: dict[str, list[JSONObject]] = {}
        # What payment_intent_data asked of the intent a first payment attempt creates.
        self._intent_data: dict[str, JSONObject] = {}

    def line_items(self, session_id: str) -> list[JSONObject]:
        return self._line_items.get(session_id, [])

    def create(self, params: JSONObject, page_base: str) -> JSONObject:
        only(params, _CREATE_PARAMS)
        if required(params, "mode") != "payment":
            raise invalid("The Stripe stand-in only models mode=payment.", "mode")
        now = self._store.now()
        expires_at = _expires_at(params, now)
        required(params, "line_items")
        items = [
            _line_item(item, f"line_items[{i}]")
            for i, item in enumerate(as_list(params, "line_items"))
        ]
        if len({item["currency"] for item in items}) > 1:
            raise invalid("All line items must use the same currency.", "line_items")
        intent_data = as_dict(params, "payment_intent_data")
        only(intent_data, {"metadata", "transfer_group"}, "payment_intent_data")
        session_id = new_id("cs_test")
        total = sum(item["amount_total"] for item in items)
        session = self._store.add(
            {
                "id": session_id,
                "object": "checkout.session",
                "livemode": False,
                "created": now,
                "mode": "payment",
                "status": "open",
                "payment_status": "unpaid",
                "amount_subtotal": total,
                "amount_total": total,
                "currency": items[0]["currency"],
                "client_reference_id": optional_str(params, "client_reference_id"),
                "customer_email": optional_str(params, "customer_email"),
                "customer_details": None,
                "metadata": metadata(params, "metadata"),
                "payment_intent": None,
                "payment_method_types": ["card"],
                "expires_at": expires_at,
                "success_url": optional_str(params, "success_url"),
                "cancel_url": optional_str(params, "cancel_url"),
                "url": f"{page_base}/checkout/{session_id}",
            }
        )
        self._line_items[session_id] = items
        self._intent_data[session_id] = {
            "metadata": metadata(intent_data, "metadata", "payment_intent_data[metadata]"),
            "transfer_group": as_str(
                intent_data.get("transfer_group", ""), "payment_intent_data[transfer_group]"
            )
            or None,
        }
        return session

    def pay(self, session_id: str, *, async_payment: bool) -> JSONObject:
        session = self._open(session_id)
        intent = self._intent(session)
        session.update(
            status="complete", url=None, customer_details={"email": session["customer_email"]}
        )
        if async_payment:
            intent.update(status="processing", last_payment_error=None)
            self._events.emit("checkout.session.completed", session)
        else:
            self._capture(session, intent)
            self._events.emit("checkout.session.completed", session)
            self._events.emit("payment_intent.succeeded", intent)
        return intent

    def succeed_async(self, session_id: str) -> JSONObject:
        session, intent = self._awaiting_funds(session_id)
        self._capture(session, intent)
        self._events.emit("checkout.session.async_payment_succeeded", session)
        self._events.emit("payment_intent.succeeded", intent)
        return intent

    def fail_async(self, session_id: str) -> JSONObject:
        session, intent = self._awaiting_funds(session_id)
        self._intents.decline(intent)
        self._events.emit("checkout.session.async_payment_failed", session)
        self._events.emit("payment_intent.payment_failed", intent)
        return intent

    def decline(self, session_id: str) -> JSONObject:
        intent = self._intent(self._open(session_id))
        self._intents.decline(intent)
        self._events.emit("payment_intent.payment_failed", intent)
        return intent

    def expire(self, session_id: str) -> JSONObject:
        session = self._store.get("checkout.session", session_id, "session")
        if session["status"] != "open":
            raise StandInError(
                400, 'Only Checkout Sessions with a status in ["open"] can be expired.'
            )
        session.update(status="expired", url=None)
        self._events.emit("checkout.session.expired", session)
        return session

    def _intent(self, session: JSONObject) -> JSONObject:
        return self._intents.for_session(session, self._intent_data[session["id"]])

    def _capture(self, session: JSONObject, intent: JSONObject) -> None:
        self._intents.capture(intent)
        session["payment_status"] = "paid"

    def _open(self, session_id: str) -> JSONObject:
        session = self._store.get("checkout.session", session_id, "session")
        if session["status"] != "open":
            status = session["status"]
            raise StandInError(400, f"Checkout Session {session_id} is {status}, not open.")
        return session

    def _awaiting_funds(self, session_id: str) -> tuple[JSONObject, JSONObject]:
        session = self._store.get("checkout.session", session_id, "session")
        intent = self._store.objects.get(session["payment_intent"] or "")
        if session["status"] != "complete" or intent is None or intent["status"] != "processing":
            raise StandInError(400, f"Checkout Session {session_id} has no payment in flight.")
        return session, intent


def _expires_at(params: JSONObject, now: int) -> int:
    expires_at = (
        as_int(params["expires_at"], "expires_at") if "expires_at" in params else now + _MAX_EXPIRY
    )
    if expires_at < now + _MIN_EXPIRY:
        raise invalid(
            "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
            "creation.",
            "expires_at",
        )
    if expires_at > now + _MAX_EXPIRY:
        raise invalid(
            "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
            "expires_at",
        )
    return expires_at


def _line_item(raw: Any, name: str) -> JSONObject:
    if not isinstance(raw, dict):
        raise invalid("Invalid object", name)
    only(raw, {"price_data", "quantity"}, name)
    price_name = f"{name}[price_data]"
    required(raw, "price_data", name)
    price = as_dict(raw, "price_data", price_name)
    only(price, {"currency", "unit_amount", "product_data"}, price_name)
    currency = as_currency(required(price, "currency", price_name), f"{price_name}[currency]")
    unit_amount = as_int(required(price, "unit_amount", price_name), f"{price_name}[unit_amount]")
    product_name = f"{price_name}[product_data]"
    required(price, "product_data", price_name)
    product = as_dict(price, "product_data", product_name)
    only(product, {"name"}, product_name)
    description = as_str(required(product, "name", product_name), f"{product_name}[name]")
    quantity = as_int(required(raw, "quantity", name), f"{name}[quantity]", minimum=1)
    return {
        "id": new_id("li"),
        "object": "item",
        "description": description,
        "quantity": quantity,
        "currency": currency,
        "amount_subtotal": unit_amount * quantity,
        "amount_total": unit_amount * quantity,
        "price": {
            "id": new_id("price"),
            "object": "price",
            "currency": currency,
            "unit_amount": unit_amount,
            "product": new_id("prod"),
        },
    }
