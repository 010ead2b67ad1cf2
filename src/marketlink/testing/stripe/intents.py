"""Payment intents and the charges that capture them: what a session's payment attempts create.

Stripe makes the intent at a session's first attempt and reuses it for later ones; a success
captures it with one charge, which refunds and disputes then refer to."""

from marketlink.testing.stripe.common import JSONObject, Store, new_id

DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}


class PaymentIntents:
    def __init__(self, store: Store) -> None:
        self._store = store

    def for_session(self, session: JSONObject, intent_data: JSONObject) -> JSONObject:
        """The session's intent, made at its first payment attempt with its
        ``payment_intent_data`` (``metadata``, ``transfer_group``)."""
        if session["payment_intent"] is not None:
            return self._store.objects[session["payment_intent"]]
        intent = self._store.add(
            {
                "id": new_id("pi"),
                "object": "payment_intent",
                "livemode": False,
                "created": self._store.now(),
                "amount": session["amount_total"],
                "amount_received": 0,
                "currency": session["currency"],
                "status": "requires_payment_method",
                "capture_method": "automatic",
                "payment_method_types": ["card"],
                "metadata": dict(intent_data["metadata"]),
                "transfer_group": intent_data["transfer_group"],
                "latest_charge": None,
                "last_payment_error": None,
            }
        )
        session["payment_intent"] = intent["id"]
        return intent

    def capture(self, intent: JSONObject) -> None:
        charge = self._store.add(
            {
                "id": new_id("ch"),
                "object": "charge",
                "livemode": False,
                "created": self._store.now(),
                "amount": intent["amount"],
                "amount_captured": intent["amount"],
                "amount_refunded": 0,
                "currency": intent["currency"],
                "captured": True,
                "paid": True,
                "refunded": False,
                "status": "succeeded",
                "payment_intent": intent["id"],
                "transfer_group": intent["transfer_group"],
                "metadata": dict(intent["metadata"]),
            }
        )
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
        )

    @staticmethod
    def decline(intent: JSONObject) -> None:
        intent.update(status="requires_payment_method", last_payment_error=dict(DECLINE))
