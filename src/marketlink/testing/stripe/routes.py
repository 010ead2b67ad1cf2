"""Which part answers which ``/v1/`` request, and ``expand``.

A request made on behalf of a connected account (a ``Stripe-Account`` header) reaches only what
the stand-in models for one: the account itself (``GET /v1/account``), its balance and its
events. The header must name an account the platform can reach (else 403, as Stripe answers)."""

import copy
import re
from collections.abc import Callable

from marketlink.testing.stripe import account
from marketlink.testing.stripe.accounts import ConnectedAccounts
from marketlink.testing.stripe.common import JSONObject, StandInError, Store
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.params import as_list, as_str, invalid, only
from marketlink.testing.stripe.refunds import Refunds
from marketlink.testing.stripe.sessions import CheckoutSessions
from marketlink.testing.stripe.transfers import Transfers

# (params, the path's captured ids, the connected account acting, or None) -> answer
Handler = Callable[[JSONObject, tuple[str, ...], str | None], JSONObject]

# API path segment -> (object type, the name Stripe gives the id in "No such ..." errors).
_RETRIEVABLE = {
    "checkout/sessions": ("checkout.session", "session"),
    "payment_intents": ("payment_intent", "intent"),
    "charges": ("charge", "charge"),
    "refunds": ("refund", "refund"),
}
_ON_BEHALF = {"/v1/account", "/v1/balance", "/v1/events", "/v1/events/{}"}


class Router:
    def __init__(
        self,
        *,
        api_key: Callable[[], str],
        store: Store,
        sessions: CheckoutSessions,
        refunds: Refunds,
        events: Events,
        accounts: ConnectedAccounts,
        transfers: Transfers,
        page_base: Callable[[], str],
    ) -> None:
        self._api_key = api_key
        self._store = store
        self._sessions = sessions
        self._refunds = refunds
        self._events = events
        self._accounts = accounts
        self._transfers = transfers
        post: dict[str, Handler] = {
            "/v1/checkout/sessions": lambda p, ids, acct: sessions.create(p, page_base()),
            "/v1/checkout/sessions/{}/expire": self._expire,
            "/v1/refunds": lambda p, ids, acct: refunds.create(p),
            "/v1/accounts": lambda p, ids, acct: accounts.create(p),
            "/v1/account_links": lambda p, ids, acct: accounts.create_link(p, page_base()),
            "/v1/accounts/{}/login_links": lambda p, ids, acct: accounts.create_login_link(
                ids[0], p, page_base()
            ),
            "/v1/transfers": lambda p, ids, acct: transfers.create(p),
            "/v1/transfers/{}/reversals": lambda p, ids, acct: transfers.reverse(ids[0], p),
        }
        get: dict[str, Handler] = {
            "/v1/events": lambda p, ids, acct: events.page(p, acct),
            "/v1/refunds": lambda p, ids, acct: refunds.page(p),
            "/v1/events/{}": _plain(lambda ids, acct: events.retrieve(ids[0], acct)),
            "/v1/balance": _plain(self._balance),
            "/v1/account": _plain(self._account),
            "/v1/accounts/{}": _plain(lambda ids, acct: accounts.retrieve(ids[0])),
            "/v1/transfers": lambda p, ids, acct: transfers.page(p),
            "/v1/transfers/{}": _plain(lambda ids, acct: transfers.retrieve(ids[0])),
            "/v1/transfers/{}/reversals": lambda p, ids, acct: transfers.reversals(ids[0], p),
            **{
                f"/v1/{segment}/{{}}": _stored(store, kind, param)
                for segment, (kind, param) in _RETRIEVABLE.items()
            },
        }
        self._routes = {
            method: [(re.compile(_pattern(path)), path, handler) for path, handler in table.items()]
            for method, table in (("POST", post), ("GET", get))
        }

    def route(self, method: str, path: str, params: JSONObject, acting: str | None) -> JSONObject:
        """Answer ``method path``; ``acting``: the ``Stripe-Account`` header, if any."""
        expanding = enumerate(as_list(params, "expand"))
        expand = [as_str(value, f"expand[{i}]") for i, value in expanding]
        for pattern, template, handler in self._routes.get(method, []):
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if acting is not None:
                self._accounts.retrieve(acting)
                if template not in _ON_BEHALF:
                    raise invalid(
                        f"The Stripe stand-in does not model {method} {path} on behalf of a "
                        "connected account (the Stripe-Account header)."
                    )
            return self._expanded(handler(params, match.groups(), acting), expand)
        raise StandInError(
            404,
            f"Unrecognized request URL ({method}: {path}). The Stripe stand-in does not model it.",
            saved=False,  # no endpoint ran
        )

    def _expire(self, params: JSONObject, ids: tuple[str, ...], acting: str | None) -> JSONObject:
        only(params, {"expand"})
        return self._sessions.expire(ids[0])

    def _balance(self, ids: tuple[str, ...], acting: str | None) -> JSONObject:
        if acting is None:
            return account.balance(account.platform_funds(self._store), self._api_key())
        return account.balance(self._transfers.account_funds(acting), self._api_key())

    def _account(self, ids: tuple[str, ...], acting: str | None) -> JSONObject:
        if acting is None:
            return account.account(self._api_key(), self._accounts.platform_country)
        return self._accounts.retrieve(acting)

    def _expanded(self, obj: JSONObject, paths: list[str]) -> JSONObject:
        result = copy.deepcopy(obj)
        for path in paths:
            self._expand(result, path.split("."), path)
        return result

    def _expand(self, obj: JSONObject, parts: list[str], path: str) -> None:
        head, rest = parts[0], parts[1:]
        value = obj.get(head)
        if head == "line_items" and obj.get("object") == "checkout.session":
            value = {
                "object": "list",
                "data": copy.deepcopy(self._sessions.line_items(obj["id"])),
                "has_more": False,
                "url": f"/v1/checkout/sessions/{obj['id']}/line_items",
            }
        elif head == "refunds" and obj.get("object") == "charge":
            # Not on a charge unless expanded, as Stripe's API has it since 2022-11-15.
            value = self._refunds.of_charge(obj["id"])
        elif head in obj and value is None:
            return
        elif isinstance(value, str) and value in self._store.objects:
            value = copy.deepcopy(self._store.objects[value])
        elif not isinstance(value, dict):
            raise StandInError(400, f"This property cannot be expanded ({path}).", param="expand")
        if rest:
            self._expand(value, rest, path)
        obj[head] = value


def _pattern(path: str) -> str:
    """``/v1/transfers/{}`` -> a pattern capturing the id in place of ``{}``."""
    return re.escape(path).replace(re.escape("{}"), "([^/]+)")


def _stored(store: Store, object_type: str, param: str) -> Handler:
    return _plain(lambda ids, acting: store.get(object_type, ids[0], param))


def _plain(read: Callable[[tuple[str, ...], str | None], JSONObject]) -> Handler:
    """A read that takes no parameters but ``expand``."""

    def handler(params: JSONObject, ids: tuple[str, ...], acting: str | None) -> JSONObject:
        only(params, {"expand"})
        return read(ids, acting)

    return handler
