"""Money: ``Decimal`` amounts in the database, integer minor units at payment providers.

Shared by the catalogue (which refuses prices a currency cannot express) and the gateways (which
charge in minor units), so neither depends on the other.
"""

from __future__ import annotations

from decimal import Decimal

# Stripe's list of currencies without a minor unit.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"}
    | {"xaf", "xof", "xpf"}
)


def decimal_places(currency: str) -> int:
    return 0 if currency.lower() in ZERO_DECIMAL_CURRENCIES else 2


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Money as the integer the providers use: cents for USD, yen for JPY."""
    return int((amount * (10 ** decimal_places(currency))).to_integral_value())


def price_problem(price: Decimal, currency: str) -> str | None:
    """Why ``price`` cannot be charged in ``currency`` (None when it can)."""
    if decimal_places(currency) == 0 and price != price.to_integral_value():
        return f"price must be a whole number in {currency.upper()}, which has no minor unit"
    return None
