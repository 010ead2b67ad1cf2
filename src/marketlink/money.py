"""Money: ``Decimal`` amounts in the database, integer minor units at payment providers.

Shared by the catalogue (which refuses prices the gateway could not charge), the system checks
(which refuse a currency it cannot charge in) and the gateways (which charge in minor units), so
none of them depends on another. Both gateways follow Stripe's rules: the dummy gateway stands in
for Stripe, so a price it takes must be one Stripe would take too.

The tables follow Stripe's "Supported currencies" page, https://docs.stripe.com/currencies
(sections "Presentment currencies", "Zero-decimal currencies", "Three-decimal currencies",
"Special cases" and "Minimum and maximum charge amounts"); table date: September 2026. Stripe's
minor units are its own, not ISO 4217's exponents: ISO gives ISK 0 places and MGA 2, Stripe's API
takes ISK with two decimals and MGA with none. Update the tables when Stripe changes its page.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.core.exceptions import ImproperlyConfigured

# Stripe's presentment currencies (those it can charge in). BGN is left out: the lev was replaced
# by the euro in January 2026 and Stripe's minimum-charge table no longer lists it.
STRIPE_CURRENCIES = frozenset(
    """
    usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bhd bif bmd bnd bob brl bsd bwp byn
    bzd cad cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd
    gnf gtq gyd hkd hnl htg huf idr ils inr isk jmd jod jpy kes kgs khr kmf krw kwd kyd kzt lak
    lbp lkr lrd lsl mad mdl mga mkd mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd
    omr pab pen pgk php pkr pln pyg qar ron rsd rub rwf sar sbd scr sek sgd shp sle sos srd std
    szl thb tjs tnd top try ttd twd tzs uah ugx uyu uzs vnd vuv wst xaf xcd xof xpf yer zar zmw
    """.split()  # noqa: SIM905 - a table of codes reads better than 140 quoted strings
)

# Amounts are whole units: ¥500 is ``500``.
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"}
    | {"xaf", "xof", "xpf"}
)

# Amounts are thousandths, and Stripe's partners need the last digit to be 0: 10.500 KWD is
# ``10500``, and 10.505 KWD cannot be charged. Prices therefore move in steps of 0.010.
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})

# Stripe's special cases. ISK is two-decimal in the API but, since 2023-04-14, only whole krónur
# can be charged (the amount must divide by 100). HUF and TWD are zero-decimal for payouts only
# and UGX two-decimal for payouts only; charges follow the lists above, and marketlink makes no
# payouts, so those three need nothing here.
WHOLE_UNITS_ONLY = frozenset({"isk"})

# The largest ``amount`` Stripe accepts, in minor units, whatever the currency (eight digits).
MAX_AMOUNT_MINOR = 99_999_999

# Stripe's minimum charge, in major units. The table is per settlement currency: a charge that is
# converted must also clear the minimum of the account's settlement currency after conversion,
# which only Stripe can tell. A currency the table does not list has no minimum marketlink can
# know (it would need an exchange rate), so there the smallest amount the currency can be charged
# in is the floor, and Stripe may still refuse a price below the equivalent of 0.50 USD.
MINIMUM_CHARGE = {
    code: Decimal(amount)
    for code, amount in {
        "usd": "0.50",
        "aed": "2.00",
        "ars": "0.50",
        "aud": "0.50",
        "brl": "0.50",
        "cad": "0.50",
        "chf": "0.50",
        "cop": "0.50",
        "czk": "15.00",
        "dkk": "2.50",
        "eur": "0.50",
        "gbp": "0.30",
        "hkd": "4.00",
        "huf": "175.00",
        "ils": "0.50",
        "inr": "0.50",
        "jpy": "50",
        "krw": "50",
        "mxn": "10.00",
        "myr": "2.00",
        "nok": "3.00",
        "nzd": "0.50",
        "php": "0.50",
        "pln": "2.00",
        "ron": "2.00",
        "rub": "0.50",
        "sek": "3.00",
        "sgd": "0.50",
        "thb": "10.00",
        "zar": "0.50",
    }.items()
}


def is_supported(currency: str) -> bool:
    return currency.lower() in STRIPE_CURRENCIES


def decimal_places(currency: str) -> int:
    """How many digits of a major unit the gateway's integer amount carries (0, 2 or 3)."""
    code = currency.lower()
    if code not in STRIPE_CURRENCIES:
        # The system check (marketlink.E008) reports this before any request meets it.
        raise ImproperlyConfigured(f"Stripe cannot charge in {code.upper()!r}.")
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def price_step(currency: str) -> Decimal:
    """The smallest difference between two prices the gateway can charge."""
    places = decimal_places(currency)
    if places == 0 or currency.lower() in WHOLE_UNITS_ONLY:
        return Decimal(1)
    # Two-decimal: one cent. Three-decimal: ten thousandths, since the last digit must be 0.
    return Decimal("0.01")


def to_minor_units(amount: Decimal, currency: str) -> int:
    """Money as the integer the providers use: cents for USD, yen for JPY, fils for KWD."""
    return int(amount.scaleb(decimal_places(currency)).to_integral_value())


def from_minor_units(amount_minor: int, currency: str) -> Decimal:
    """The providers' integer back as money: 2999 cents are 29.99 USD, 10500 fils 10.500 KWD."""
    return Decimal(amount_minor).scaleb(-decimal_places(currency))


def format_amount(amount: Decimal, currency: str) -> str:
    """An amount as a person reads it, with the currency's places: ``10.500 KWD``."""
    return f"{amount:.{decimal_places(currency)}f} {currency.upper()}"


def format_minor_units(amount_minor: int, currency: str) -> str:
    return format_amount(from_minor_units(amount_minor, currency), currency)


def price_limits(currency: str) -> tuple[Decimal, Decimal]:
    """The lowest and highest price the gateway can charge in ``currency``."""
    step = price_step(currency)
    highest = Decimal(MAX_AMOUNT_MINOR).scaleb(-decimal_places(currency))
    highest = (highest / step).to_integral_value(ROUND_FLOOR) * step
    return MINIMUM_CHARGE.get(currency.lower(), step), highest


def price_problem(price: Decimal, currency: str) -> str | None:
    """Why ``price`` cannot be charged in ``currency`` (None when it can)."""
    code = currency.upper()
    step = price_step(currency)
    if price % step:
        if step != 1:
            return f"price must be a multiple of {format_amount(step, currency)}"
        if decimal_places(currency) == 0:
            return f"price must be a whole number in {code}, which has no minor unit"
        return f"price must be a whole number in {code}, which Stripe charges without fractions"
    lowest, highest = price_limits(currency)
    if price < lowest:
        return f"price must be at least {format_amount(lowest, currency)}"
    if price > highest:
        return f"price must be at most {format_amount(highest, currency)}"
    return None


def platform_fee(total: Decimal, currency: str, *, percent: Decimal, fixed: Decimal) -> Decimal:
    """The platform's fee of an order: ``percent`` of ``total`` rounded half up to the
    currency's step (a fee of 2.505 is 2.51, as a person rounds; amounts charged round half even
    in :func:`to_minor_units`, which never meets a half here), plus ``fixed``, never more than
    ``total``."""
    step = price_step(currency)
    share = (total * percent / 100 / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step
    return min(share + fixed, total).quantize(Decimal("0.01"))
