"""The account behind the API key and the balances: ``GET /v1/balance`` and ``GET /v1/account``,
the cheap calls an operator's health check makes to learn whether a key works and in which mode;
with a ``Stripe-Account`` header, the same calls about a connected account."""

import hashlib
from collections import defaultdict
from collections.abc import Mapping

from marketlink.testing.stripe import countries
from marketlink.testing.stripe.common import JSONObject, Store


def livemode(api_key: str) -> bool:
    return not api_key.startswith(("sk_test_", "rk_test_"))


def platform_funds(store: Store) -> dict[str, int]:
    """What the captured charges left after refunds and transfers (net of their reversals), per
    currency, all of it available at once (the stand-in has no payout schedule)."""
    totals: dict[str, int] = defaultdict(int)
    for obj in store.objects.values():
        if obj["object"] == "charge":
            totals[obj["currency"]] += obj["amount"] - obj["amount_refunded"]
        elif obj["object"] == "transfer":
            totals[obj["currency"]] -= obj["amount"] - obj["amount_reversed"]
    return totals


def connected_funds(store: Store, account_id: str, paid_out: Mapping[str, int]) -> dict[str, int]:
    """A connected account's balance: the transfers it received, net of their reversals, less
    what was paid out to its bank."""
    totals: dict[str, int] = defaultdict(int, {cur: -amount for cur, amount in paid_out.items()})
    for obj in store.objects.values():
        if obj["object"] == "transfer" and obj["destination"] == account_id:
            totals[obj["currency"]] += obj["amount"] - obj["amount_reversed"]
    return totals


def balance(funds: Mapping[str, int], api_key: str) -> JSONObject:
    available = [
        {"amount": amount, "currency": currency, "source_types": {"card": amount}}
        for currency, amount in sorted(funds.items())
    ] or [{"amount": 0, "currency": "usd", "source_types": {"card": 0}}]
    return {
        "object": "balance",
        "available": available,
        "pending": [{**fund, "amount": 0, "source_types": {"card": 0}} for fund in available],
        "livemode": livemode(api_key),
    }


def account(api_key: str, country: str) -> JSONObject:
    """One account per key, with the same id every time it is asked."""
    digest = hashlib.sha256(api_key.encode()).hexdigest()[:16]
    return {
        "id": f"acct_{digest}",
        "object": "account",
        "type": "standard",
        "country": country,
        "default_currency": countries.default_currency(country),
        "email": None,
        "charges_enabled": True,
        "payouts_enabled": True,
        "details_submitted": True,
        "business_profile": {"name": "Stripe stand-in"},
    }
