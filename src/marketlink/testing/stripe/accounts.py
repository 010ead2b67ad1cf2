"""Connected accounts as marketlink makes them (Express Dashboard, the platform paying Stripe's
fees and liable for losses), their onboarding through Account Links, their Express Dashboard
login links, and what happens to them later (a bank problem, a capability lost, deauthorization).

A new account can do nothing yet: ``charges_enabled``, ``payouts_enabled`` and
``details_submitted`` are false, each requested capability is ``inactive`` and the onboarding
fields are listed as due (``currently_due``, and ``past_due`` with ``disabled_reason``
``requirements.past_due``, as Stripe shows a new account). Finishing onboarding (the hosted page
behind an Account Link, or the lever) activates the requested capabilities and enables payouts;
``charges_enabled`` follows the ``card_payments`` capability, so an account that only receives
transfers keeps it false. Changes are told to the Connect endpoint: ``account.updated`` (with
``previous_attributes``), ``capability.updated`` and ``account.application.deauthorized``, each
carrying the account's id as the event's ``account``.

An account the platform cannot reach (unknown, or deauthorized) answers 403, as Stripe answers a
key without access to the account."""

import copy
from typing import Any

from marketlink.testing.stripe import account_shapes as shapes
from marketlink.testing.stripe import countries
from marketlink.testing.stripe.common import JSONObject, StandInError, Store, new_id
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.params import (
    as_dict,
    as_str,
    invalid,
    metadata,
    one_of,
    only,
    optional_str,
    required,
)

_CREATE_PARAMS = {
    "type",
    "controller",
    "capabilities",
    "country",
    "email",
    "metadata",
    "tos_acceptance",
    "business_type",
    "expand",
}
_LINK_URLS = ("refresh_url", "return_url")
LINK_LIFETIME = 300  # seconds an Account Link can be opened, as Stripe's expire within minutes


class ConnectedAccounts:
    """``platform_country`` is the platform's own country (``GET /v1/account``), the default
    country of a new account."""

    def __init__(self, store: Store, events: Events, *, platform_country: str = "US") -> None:
        self._store = store
        self._events = events
        self.platform_country = platform_country
        self._deauthorized: set[str] = set()
        self._links: dict[str, JSONObject] = {}
        self._logins: dict[str, str] = {}

    # -- the API ---------------------------------------------------------------------------

    def create(self, params: JSONObject) -> JSONObject:
        """``POST /v1/accounts``, with controller properties or the legacy ``type=express``."""
        only(params, _CREATE_PARAMS)
        controller, legacy_type = shapes.controller(params)
        country = as_str(params.get("country", self.platform_country), "country").upper()
        if country not in countries.ISO_CODES:
            raise invalid(
                f"Country '{country}' is unknown. Try using a 2-character alphanumeric country "
                "code instead, such as 'US', 'EG', or 'GB'.",
                "country",
            )
        requested = shapes.requested_capabilities(as_dict(params, "capabilities"))
        tos = as_dict(params, "tos_acceptance")
        only(tos, {"service_agreement"}, "tos_acceptance")
        agreement_param = "tos_acceptance[service_agreement]"
        agreement = one_of(
            tos.get("service_agreement", "full"), ("full", "recipient"), agreement_param
        )
        if agreement == "recipient" and "card_payments" in requested:
            raise invalid(
                "The `card_payments` capability cannot be requested for an account under the "
                "`recipient` service agreement: it can only receive transfers.",
                agreement_param,
            )
        business_type = params.get("business_type")
        account_id = new_id("acct")
        return self._store.add(
            {
                "id": account_id,
                "object": "account",
                "business_profile": {"mcc": None, "name": None, "url": None},
                "business_type": (
                    None
                    if business_type is None
                    else one_of(business_type, shapes.BUSINESS_TYPES, "business_type")
                ),
                "capabilities": dict.fromkeys(requested, "inactive"),
                "charges_enabled": False,
                "controller": controller,
                "country": country,
                "created": self._store.now(),
                "default_currency": countries.default_currency(country),
                "details_submitted": False,
                "email": optional_str(params, "email"),
                "external_accounts": {
                    "object": "list",
                    "data": [],
                    "has_more": False,
                    "total_count": 0,
                    "url": f"/v1/accounts/{account_id}/external_accounts",
                },
                "future_requirements": shapes.requirements([]),
                "metadata": metadata(params, "metadata"),
                "payouts_enabled": False,
                "requirements": shapes.requirements(shapes.ONBOARDING_DUE, "requirements.past_due"),
                "settings": {"payouts": {"schedule": {"delay_days": 2, "interval": "daily"}}},
                "tos_acceptance": {
                    "date": None,
                    "ip": None,
                    "user_agent": None,
                    "service_agreement": agreement,
                },
                "type": legacy_type,
            }
        )

    def retrieve(self, account_id: str, param: str | None = None) -> JSONObject:
        """``GET /v1/accounts/{id}``; also how the other parts reach an account."""
        account = self._store.objects.get(account_id)
        if account is None or account["object"] != "account" or account_id in self._deauthorized:
            raise StandInError(
                403,
                f"The provided key does not have access to account '{account_id}' (or that "
                "account does not exist). Application access may have been revoked.",
                param=param,
            )
        return account

    def create_link(self, params: JSONObject, page_base: str) -> JSONObject:
        """``POST /v1/account_links``: a single-use URL to the hosted onboarding page."""
        only(params, {"account", "type", "refresh_url", "return_url", "expand"})
        account_id = as_str(required(params, "account"), "account")
        link_type = one_of(
            required(params, "type"), ("account_onboarding", "account_update"), "type"
        )
        urls = {
            name: shapes.url(required(params, name), name) for name in ("refresh_url", "return_url")
        }
        self.retrieve(account_id, "account")
        if link_type == "account_update":
            raise StandInError(
                400,
                "You cannot create `account_update` Account Links for an account whose "
                "requirements Stripe collects (an Express account); use `account_onboarding`.",
                param="type",
            )
        now = self._store.now()
        token = new_id("onb")
        self._links[token] = {
            "account": account_id,
            **urls,
            "expires_at": now + LINK_LIFETIME,
            "opened": False,
            "used": False,
        }
        return {
            "object": "account_link",
            "created": now,
            "expires_at": now + LINK_LIFETIME,
            "url": f"{page_base}/connect/onboarding/{token}",
        }

    def create_login_link(self, account_id: str, params: JSONObject, page_base: str) -> JSONObject:
        """``POST /v1/accounts/{id}/login_links``: the Express Dashboard, once onboarded."""
        only(params, {"expand"})
        account = self.retrieve(account_id, "account")
        if not account["details_submitted"]:
            raise StandInError(
                400,
                f"Cannot create a login link for the account {account_id}: it has not completed "
                "onboarding.",
                param="account",
            )
        token = new_id("login")
        self._logins[token] = account_id
        return {
            "object": "login_link",
            "created": self._store.now(),
            "url": f"{page_base}/connect/express/{account_id}/{token}",
        }

    # -- the hosted pages ------------------------------------------------------------------

    def open_link(self, token: str) -> JSONObject | None:
        """An onboarding link being opened: a copy of it with ``usable`` saying whether it may
        still be (once, within its lifetime), or ``None`` for a link never made."""
        link = self._links.get(token)
        if link is None:
            return None
        usable = not link["opened"] and self._store.now() <= link["expires_at"]
        link["opened"] = True
        return {**link, "usable": usable and link["account"] not in self._deauthorized}

    def submit_link(self, token: str, finish: bool) -> JSONObject | None:
        """The onboarding form sent (``finish``) or left; ``None`` if the link cannot be."""
        link = self._links.get(token)
        if link is None or not link["opened"] or link["used"]:
            return None
        link["used"] = True
        if finish:
            self.finish_onboarding(link["account"])
        return dict(link)

    def use_login(self, account_id: str, token: str) -> JSONObject | None:
        """A login link opened: the account, the first time only."""
        if self._logins.get(token) != account_id:
            return None
        del self._logins[token]
        return self.retrieve(account_id)

    # -- what happens to accounts (the levers) ---------------------------------------------

    def finish_onboarding(self, account_id: str) -> JSONObject:
        account = self.retrieve(account_id)
        now = self._store.now()
        self._update(
            account,
            details_submitted=True,
            payouts_enabled=True,
            charges_enabled="card_payments" in account["capabilities"],
            business_type=account["business_type"] or "individual",
            requirements=shapes.requirements([]),
            tos_acceptance={**account["tos_acceptance"], "date": now, "ip": "127.0.0.1"},
            capabilities=dict.fromkeys(account["capabilities"], "active"),
        )
        return account

    def set_payouts_enabled(self, account_id: str, enabled: bool) -> JSONObject:
        account = self.retrieve(account_id)
        if not account["details_submitted"]:
            raise StandInError(400, f"Account {account_id} has not finished onboarding.")
        due = (
            shapes.requirements([])
            if enabled
            else shapes.requirements(["external_account"], "requirements.past_due")
        )
        self._update(account, payouts_enabled=enabled, requirements=due)
        return account

    def set_capability(self, account_id: str, capability: str, status: str) -> JSONObject:
        if capability not in shapes.CAPABILITIES or status not in shapes.CAPABILITY_STATUSES:
            modelled = f"{shapes.CAPABILITIES} as {shapes.CAPABILITY_STATUSES}"
            raise ValueError(f"the stand-in models the capabilities {modelled}")
        account = self.retrieve(account_id)
        charges = (
            account["charges_enabled"] if capability != "card_payments" else status == "active"
        )
        self._update(
            account,
            capabilities={**account["capabilities"], capability: status},
            charges_enabled=charges,
        )
        return account

    def deauthorize(self, account_id: str) -> JSONObject:
        """The account disconnects from the platform, which can no longer reach it."""
        account = self.retrieve(account_id)
        self._deauthorized.add(account_id)
        self._events.emit(
            "account.application.deauthorized", shapes.application(), account=account_id
        )
        return account

    def _update(self, account: JSONObject, **changes: Any) -> None:
        """Apply ``changes``; tell the Connect endpoint what changed, if anything did."""
        previous = {
            key: copy.deepcopy(account[key])
            for key, value in changes.items()
            if account[key] != value
        }
        if not previous:
            return
        account.update(changes)
        changed = "capabilities" in previous
        before: JSONObject = previous["capabilities"] if changed else account["capabilities"]
        for name, status in account["capabilities"].items():
            if before.get(name) != status:
                self._events.emit(
                    "capability.updated",
                    shapes.capability(account, name),
                    account=account["id"],
                    previous={"status": before.get(name, "unrequested")},
                )
        self._events.emit("account.updated", account, account=account["id"], previous=previous)
