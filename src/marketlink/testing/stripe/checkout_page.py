"""The hosted checkout page at a session's ``url``: what the customer sees and does."""

import copy
import html
import re
from collections.abc import Callable

from marketlink.testing.stripe.common import JSONObject, StandInError, Store
from marketlink.testing.stripe.responses import Response, buttons, page, redirect
from marketlink.testing.stripe.sessions import CheckoutSessions

_PAGE = re.compile(r"/checkout/([^/]+)(?:/(pay|decline))?")
_RETURN_URLS = ("success_url", "cancel_url")


class CheckoutPage:
    """The hosted page: Pay completes the session and redirects (303) to ``success_url`` with
    ``{CHECKOUT_SESSION_ID}`` filled in; Decline records a declined card and redirects to
    ``cancel_url`` untouched (Stripe only fills the template in ``success_url``)."""

    def __init__(
        self,
        *,
        store: Store,
        sessions: CheckoutSessions,
        page_base: Callable[[], str],
        pay: Callable[[str], object],
        decline: Callable[[str], object],
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._page_base = page_base
        self._pay = pay
        self._decline = decline

    def handle(self, method: str, path: str) -> Response:
        match = _PAGE.fullmatch(path)
        if match is None:
            return page(404, "Not found.")
        session_id, action = match[1], match[2]
        if method == "GET" and action is None:
            with self._store.lock:
                session = copy.deepcopy(self._store.objects.get(session_id))
                items = copy.deepcopy(self._sessions.line_items(session_id))
            if session is None or session["object"] != "checkout.session":
                return page(404, "No such Checkout Session.")
            return page(200, _checkout_html(session, items))
        if method != "POST" or action is None:
            return page(405, "Method not allowed.")
        try:
            (self._pay if action == "pay" else self._decline)(session_id)
        except StandInError as error:
            return page(error.status, html.escape(error.message))
        with self._store.lock:
            session = self._store.objects[session_id]
            success_url, cancel_url = (session[key] for key in _RETURN_URLS)
        page_url = f"{self._page_base()}/checkout/{session_id}"
        if action == "pay":
            # Stripe fills the {CHECKOUT_SESSION_ID} template in success_url only.
            target = (success_url or page_url).replace("{CHECKOUT_SESSION_ID}", session_id)
        else:
            target = cancel_url or page_url
        return redirect(target)


def _checkout_html(session: JSONObject, items: list[JSONObject]) -> str:
    rows = "".join(
        f"<li>{item['quantity']} &times; {html.escape(item['description'])}: "
        f"{item['amount_total']}</li>"
        for item in items
    )
    summary = (
        f"<h1>Checkout {html.escape(session['id'])}</h1><ul>{rows}</ul>"
        f"<p>Total: {session['amount_total']} {html.escape(session['currency'])} "
        f"(smallest currency unit)</p><p>Status: {html.escape(session['status'])}</p>"
    )
    if session["status"] != "open":
        return summary
    return summary + buttons(f"/checkout/{session['id']}", ("pay", "Pay"), ("decline", "Decline"))
