"""The account behind the API key: ``GET /v1/balance`` and ``GET /v1/account``, the cheap calls
an operator's health check makes to learn whether a key works and in which mode."""

import hashlib
from collections import defaultdict

from marketlink.testing.stripe.common import JSONObject, Store


def livemode(api_key: str) -> bool:
    return not api_key.startswith(("sk_test_", "rk_test_"))


def balance(store: Store, api_key: str) -> JSONObject:
    """What the captured charges left after refunds, per currency, all of it available at once
    (the stand-in has no payout schedule)."""
    totals: dict[str, int] = defaultdict(int)
    for obj in store.objects.values():
        if obj["object"] == "charge":
            totals[obj["currency"]] += obj["amount"] - obj["amount_refunded"]
    funds = [
        {"amount": amount, "currency": currency, "source_types": {"card": amount}}
        for currency, amount in sorted(totals.items())
    ] or [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]
    return {
        "object": "balance",
        "available": funds,
        "pending": [{**fund, "amount": 0, "source_types": {"card": 0}} for fund in funds],
        "livemode": livemode(api_key),
    }


def account(api_key: str) -> JSONObject:
    """One account per key, with the same id every time it is asked."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return {
        "id": f"acct_{digest}",
        "object": "account",
        "type": "standard",
        "country": "US",
        "default_currency": "usd",
        "email": None,
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "business_profile": {"name": "Stripe stand-in"},
    }
