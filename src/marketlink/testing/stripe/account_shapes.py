"""What a connected account is made of: its creation parameters read into a ``controller`` and
requested capabilities, its ``requirements``, and the capability and application objects its
events carry."""

import hashlib
from typing import Any
from urllib.parse import urlsplit

from marketlink.testing.stripe.common import JSONObject
from marketlink.testing.stripe.params import as_bool, as_dict, as_str, invalid, one_of, only

CAPABILITIES = ("card_payments", "transfers")
CAPABILITY_STATUSES = ("active", "inactive", "pending")
BUSINESS_TYPES = ("company", "government_entity", "individual", "non_profit")
# What Stripe's hosted onboarding collects from a new Express account.
ONBOARDING_DUE = [
    "business_profile.mcc",
    "business_profile.url",
    "business_type",
    "external_account",
    "representative.first_name",
    "representative.last_name",
    "tos_acceptance.date",
    "tos_acceptance.ip",
]


def requirements(due: list[str], disabled_reason: str | None = None) -> JSONObject:
    """Stripe's ``requirements`` hash: ``due`` is also ``past_due`` when it disables the
    account (``disabled_reason``)."""
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": list(due),
        "disabled_reason": disabled_reason,
        "errors": [],
        "eventually_due": list(due),
        "past_due": list(due) if disabled_reason else [],
        "pending_verification": [],
    }


def controller(params: JSONObject) -> tuple[JSONObject, str]:
    """The account's ``controller`` and ``type``; only Express accounts are modelled."""
    express = {"requirement_collection": "stripe", "stripe_dashboard": {"type": "express"}}
    if "type" in params:
        if "controller" in params:
            raise invalid("You cannot specify both `type` and `controller`.", "type")
        if one_of(params["type"], ("custom", "express", "standard"), "type") != "express":
            raise invalid("The Stripe stand-in models only Express accounts.", "type")
        legacy = {"fees": {"payer": "application_express"}, "losses": {"payments": "application"}}
        return {"type": "application", "is_controller": True, **legacy, **express}, "express"
    raw = as_dict(params, "controller")
    if not raw:
        raise invalid(
            "The Stripe stand-in models only Express accounts: pass "
            "controller[stripe_dashboard][type]=express (or type=express).",
            "controller",
        )
    only(raw, {"stripe_dashboard", "fees", "losses", "requirement_collection"}, "controller")
    chosen = {}
    for group, key, default, allowed in (
        ("stripe_dashboard", "type", "full", ("express", "full", "none")),
        ("fees", "payer", "account", ("account", "application")),
        ("losses", "payments", "stripe", ("application", "stripe")),
    ):
        settings = as_dict(raw, group, f"controller[{group}]")
        only(settings, {key}, f"controller[{group}]")
        chosen[group] = one_of(settings.get(key, default), allowed, f"controller[{group}][{key}]")
    collection_param = "controller[requirement_collection]"
    collection = one_of(
        raw.get("requirement_collection", "stripe"), ("application", "stripe"), collection_param
    )
    if chosen["stripe_dashboard"] != "express":
        raise invalid(
            "The Stripe stand-in models only accounts with the Express Dashboard.",
            "controller[stripe_dashboard][type]",
        )
    if collection != "stripe":
        raise invalid(
            "An account with the Express Dashboard must have Stripe collect its requirements.",
            collection_param,
        )
    if chosen["fees"] == "account" and chosen["losses"] != "stripe":
        raise invalid(
            "When controller[fees][payer] is `account`, controller[losses][payments] must be "
            "`stripe`.",
            "controller[losses][payments]",
        )
    fees_losses = {"fees": {"payer": chosen["fees"]}, "losses": {"payments": chosen["losses"]}}
    return {"type": "application", "is_controller": True, **fees_losses, **express}, "none"


def requested_capabilities(raw: JSONObject) -> list[str]:
    only(raw, set(CAPABILITIES), "capabilities")
    requested = []
    for name in raw:
        settings = as_dict(raw, name, f"capabilities[{name}]")
        only(settings, {"requested"}, f"capabilities[{name}]")
        if as_bool(settings.get("requested", "false"), f"capabilities[{name}][requested]"):
            requested.append(name)
    return requested


def url(value: Any, param: str) -> str:
    """An absolute http(s) URL, as Stripe wants a link's ``refresh_url`` and ``return_url``."""
    found = as_str(value, param)
    parts = urlsplit(found)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid("Not a valid URL", param, "url_invalid")
    return found


def capability(account: JSONObject, name: str) -> JSONObject:
    status = account["capabilities"][name]
    return {
        "id": name,
        "object": "capability",
        "account": account["id"],
        "future_requirements": requirements([]),
        "requested": True,
        "requested_at": account["created"],
        "requirements": account["requirements"] if status != "active" else requirements([]),
        "status": status,
    }


def application() -> JSONObject:
    """The platform's Connect application, as a deauthorization event names it."""
    digest = hashlib.sha256(b"marketlink stripe stand-in").hexdigest()[:24]
    return {"id": f"ca_{digest}", "object": "application", "name": "Stripe stand-in platform"}
