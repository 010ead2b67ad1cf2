"""Countries, as far as Connect needs them: which codes exist, the currency an account in each
starts with, and the region where transfers between countries need no recipient agreement.

The stand-in knows every ISO 3166-1 alpha-2 code (an unknown one is refused as Stripe refuses it)
but not which countries Stripe serves: any known country may hold a connected account."""


def _codes(text: str) -> frozenset[str]:
    return frozenset(text.split())


ISO_CODES = _codes(
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
    "BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
    "DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
    "GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
    "KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
    "MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
    "PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
    "SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
    "US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW"
)

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
