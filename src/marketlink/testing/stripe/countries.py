"""Countries, as far as Connect needs them: which codes exist, the currency an account in each
starts with, and the region where transfers between countries need no recipient agreement.

The stand-in knows every ISO 3166-1 alpha-2 code (an unknown one is refused as Stripe refuses it)
but not which countries Stripe serves: any known country may hold a connected account."""

from marketlink.countries import ISO_CODES

__all__ = ["ISO_CODES", "default_currency", "transfers_need_recipient"]


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


_EURO = _codes("AT BE BG CY DE EE ES FI FR GR HR IE IT LT LU LV MT NL PT SI SK")
_CURRENCIES = {
    **dict.fromkeys(_EURO, "eur"),
    **{"US": "usd", "GB": "gbp", "GI": "gbp", "CA": "cad", "AU": "aud", "NZ": "nzd"},
    **{"JP": "jpy", "CH": "chf", "LI": "chf", "SE": "sek", "NO": "nok", "DK": "dkk"},
    **{"PL": "pln", "CZ": "czk", "HU": "huf", "RO": "ron", "IS": "isk", "SG": "sgd"},
    **{"HK": "hkd", "MX": "mxn", "BR": "brl", "IN": "inr", "MY": "myr", "TH": "thb"},
    "AE": "aed",
}

# Stripe moves funds between countries of the European Economic Area under the full service
# agreement; other cross-border transfers need the recipient agreement.
_EEA = _EURO | _codes("CZ DK HU IS LI NO PL RO SE")


def default_currency(country: str) -> str:
    """The currency an account in ``country`` starts with (US dollars where not listed)."""
    return _CURRENCIES.get(country, "usd")


def transfers_need_recipient(platform: str, account: str) -> bool:
    """Whether a transfer from a platform in ``platform`` to an account in ``account`` needs
    the account to be under the recipient service agreement."""
    return platform != account and not (platform in _EEA and account in _EEA)
