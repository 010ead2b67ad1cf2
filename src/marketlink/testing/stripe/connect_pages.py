"""The hosted Connect pages: onboarding behind an Account Link's ``url``, and the Express
Dashboard behind a login link's.

An Account Link opens once, within its lifetime: opened again, or too late, it redirects (303)
to its ``refresh_url``, where the platform makes a new link, as Stripe's do. The page's
"Finish onboarding" completes the account (as ``StripeStandIn.finish_onboarding()`` does) and
"Leave" does not; both redirect to ``return_url``, so reaching it never proves onboarding is
finished: only the account (or its ``account.updated`` event) says so. A login link opens once."""

import html
import re
from collections.abc import Callable
from contextlib import AbstractContextManager

from marketlink.testing.stripe.accounts import ConnectedAccounts
from marketlink.testing.stripe.common import JSONObject
from marketlink.testing.stripe.responses import Response, buttons, page, redirect
from marketlink.testing.stripe.transfers import Transfers

_ONBOARDING = re.compile(r"/connect/onboarding/([^/]+)(?:/(finish|leave))?")
_EXPRESS = re.compile(r"/connect/express/([^/]+)/([^/]+)")


class ConnectPages:
    def __init__(
        self,
        *,
        accounts: ConnectedAccounts,
        transfers: Transfers,
        transaction: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._accounts = accounts
        self._transfers = transfers
        self._transaction = transaction

    def handle(self, method: str, path: str) -> Response:
        onboarding, express = _ONBOARDING.fullmatch(path), _EXPRESS.fullmatch(path)
        if onboarding and method == "GET" and onboarding[2] is None:
            return self._open(onboarding[1])
        if onboarding and method == "POST" and onboarding[2] is not None:
            with self._transaction():
                link = self._accounts.submit_link(onboarding[1], onboarding[2] == "finish")
            if link is None:
                return page(400, "This onboarding link was never opened, or was already used.")
            return redirect(link["return_url"])
        if express and method == "GET":
            with self._transaction():
                account = self._accounts.use_login(express[1], express[2])
                funds = self._transfers.account_funds(express[1]) if account else {}
            if account is None:
                return page(404, "This login link is unknown or was already used.")
            return page(200, _dashboard_html(account, funds))
        if onboarding or express:
            return page(405, "Method not allowed.")
        return page(404, "Not found.")

    def _open(self, token: str) -> Response:
        with self._transaction():
            link = self._accounts.open_link(token)
            account = self._accounts.retrieve(link["account"]) if link and link["usable"] else None
        if link is None:
            return page(404, "No such onboarding link.")
        if account is None:
            return redirect(link["refresh_url"])
        return page(200, _onboarding_html(account, token))


def _onboarding_html(account: JSONObject, token: str) -> str:
    due = "".join(
        f"<li>{html.escape(item)}</li>" for item in account["requirements"]["currently_due"]
    )
    return (
        f"<h1>Onboarding {html.escape(account['id'])}</h1>"
        f"<p>Email: {html.escape(account['email'] or '')}; country: "
        f"{html.escape(account['country'])}</p><p>Due:</p><ul>{due}</ul>"
        + buttons(
            f"/connect/onboarding/{token}",
            ("finish", "Finish onboarding"),
            ("leave", "Leave"),
        )
    )


def _dashboard_html(account: JSONObject, funds: dict[str, int]) -> str:
    rows = "".join(
        f"<li>{amount} {html.escape(currency)}</li>" for currency, amount in sorted(funds.items())
    )
    return (
        f"<h1>Express Dashboard of {html.escape(account['id'])}</h1>"
        f"<p>Payouts enabled: {account['payouts_enabled']}</p><p>Balance:</p><ul>{rows}</ul>"
    )
