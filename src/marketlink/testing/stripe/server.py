"""The HTTP layer: the API under ``/v1/`` (faults, Bearer authentication, idempotency keys,
routing, ``expand``) and the hosted checkout page at a session's ``url``.

Idempotency: only successful POSTs are remembered, since Stripe saves no result for requests
that fail validation and injected faults stand for failures before Stripe's API is reached."""

import copy
import hmac
import html
import json
import logging
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from marketlink.testing.stripe import account
from marketlink.testing.stripe.common import (
    JSONObject,
    RecordedRequest,
    StandInError,
    Store,
    new_id,
)
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.params import as_list, as_str, only, parse_form
from marketlink.testing.stripe.refunds import Refunds
from marketlink.testing.stripe.sessions import CheckoutSessions

_log = logging.getLogger(__name__)

# API path segment -> (object type, the name Stripe gives the id in "No such ..." errors).
_RETRIEVABLE = {
    "checkout/sessions": ("checkout.session", "session"),
    "payment_intents": ("payment_intent", "intent"),
    "charges": ("charge", "charge"),
    "refunds": ("refund", "refund"),
}
_RETRIEVE = re.compile(rf"/v1/({'|'.join(_RETRIEVABLE)})/([^/]+)")
_EVENT = re.compile(r"/v1/events/([^/]+)")
_EXPIRE = re.compile(r"/v1/checkout/sessions/([^/]+)/expire")
_PAGE = re.compile(r"/checkout/([^/]+)(?:/(pay|decline))?")
_RETURN_URLS = ("success_url", "cancel_url")


class Response(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


class Api:
    """``/v1/``, with the faults a test injects: ``latency`` (seconds before each answer),
    ``down`` (every call a 503) and ``fail_next()``; ``required_version``, when set, refuses a
    request whose ``Stripe-Version`` header differs (400), as Stripe refuses a version it does
    not know: it proves a client pins the version it speaks."""

    def __init__(
        self,
        *,
        api_key: str,
        store: Store,
        sessions: CheckoutSessions,
        refunds: Refunds,
        events: Events,
        page_base: Callable[[], str],
        transaction: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.api_key = api_key
        self.latency = 0.0
        self.down = False
        self.required_version: str | None = None
        self._store = store
        self._sessions = sessions
        self._refunds = refunds
        self._events = events
        self._page_base = page_base
        self._transaction = transaction
        self._idempotent: dict[str, tuple[str, bytes]] = {}
        self._requests: list[RecordedRequest] = []
        self._failures = 0
        self._failure_status = 500

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._store.lock:
            return list(self._requests)

    def fail_next(self, n: int, status: int) -> None:
        with self._store.lock:
            self._failures = n
            self._failure_status = status

    def handle(
        self,
        method: str,
        path: str,
        raw: str,
        authorization: str | None,
        key: str | None,
        version: str | None = None,
    ) -> Response:
        if self.latency > 0:
            time.sleep(self.latency)
        request_id = new_id("req")
        key = key if method == "POST" else None
        params: JSONObject = {}
        replayed = False
        with self._transaction():
            self._events.current_request = {"id": request_id, "idempotency_key": key}
            try:
                params = parse_form(raw)
                self._check_version(version)
                status, body, replayed = self._respond(method, path, params, authorization, key)
            except StandInError as error:
                status, body = error.status, _dumps(error.body())
            except Exception:  # a stand-in bug must reach the test as an error, not a dead socket
                _log.exception("the stand-in failed on %s %s", method, path)
                crash = StandInError(500, "The Stripe stand-in crashed.", error_type="api_error")
                status, body = crash.status, _dumps(crash.body())
            finally:
                self._events.current_request = None
            self._requests.append(RecordedRequest(method, path, params, key, status, version))
        headers = {"Content-Type": "application/json", "Request-Id": request_id}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return Response(status, body, headers)

    def _check_version(self, version: str | None) -> None:
        if self.required_version is not None and version != self.required_version:
            raise StandInError(
                400,
                f"Invalid Stripe API version: {version}; this stand-in speaks "
                f"{self.required_version}.",
                param="Stripe-Version",
            )

    def _respond(
        self,
        method: str,
        path: str,
        params: JSONObject,
        authorization: str | None,
        key: str | None,
    ) -> tuple[int, bytes, bool]:
        if self.down:
            raise StandInError(503, "The Stripe stand-in is down.", error_type="api_error")
        if self._failures > 0:
            self._failures -= 1
            raise StandInError(
                self._failure_status, "Injected failure (fail_next).", error_type="api_error"
            )
        self._authenticate(authorization)
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        if key is not None and key in self._idempotent:
            first, body = self._idempotent[key]
            if first != fingerprint:
                raise StandInError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they "
                    f"were first used with. Try using a key other than '{key}' if you meant to "
                    "execute a different request.",
                    error_type="idempotency_error",
                )
            return 200, body, True
        body = _dumps(self._route(method, path, params))
        if key is not None:
            self._idempotent[key] = (fingerprint, body)
        return 200, body, False

    def _authenticate(self, authorization: str | None) -> None:
        if authorization is None or not authorization.startswith("Bearer "):
            raise StandInError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        given = authorization.removeprefix("Bearer ")
        if not hmac.compare_digest(given, self.api_key):
            raise StandInError(401, f"Invalid API Key provided: {given[:8]}****{given[-4:]}")

    def _route(self, method: str, path: str, params: JSONObject) -> JSONObject:
        expanding = enumerate(as_list(params, "expand"))
        expand = [as_str(value, f"expand[{i}]") for i, value in expanding]
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._expanded(self._sessions.create(params, self._page_base()), expand)
        if method == "POST" and path == "/v1/refunds":
            return self._expanded(self._refunds.create(params), expand)
        expiring = _EXPIRE.fullmatch(path)
        if method == "POST" and expiring:
            only(params, {"expand"})
            return self._expanded(self._sessions.expire(expiring[1]), expand)
        if method == "GET":
            return self._expanded(self._read(path, params), expand)
        raise _unrecognized(method, path)

    def _read(self, path: str, params: JSONObject) -> JSONObject:
        if path == "/v1/events":
            return self._events.page(params)
        read = self._reader(path)
        only(params, {"expand"})
        return read()

    def _reader(self, path: str) -> Callable[[], JSONObject]:
        if path == "/v1/balance":
            return lambda: account.balance(self._store, self.api_key)
        if path == "/v1/account":
            return lambda: account.account(self.api_key)
        event = _EVENT.fullmatch(path)
        if event:
            return lambda: self._events.retrieve(event[1])
        retrieving = _RETRIEVE.fullmatch(path)
        if retrieving:
            object_type, param = _RETRIEVABLE[retrieving[1]]
            return lambda: self._store.get(object_type, retrieving[2], param)
        raise _unrecognized("GET", path)

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
            value = {
                "object": "list",
                "data": [
                    copy.deepcopy(refund)
                    for refund in self._store.objects.values()
                    if refund["object"] == "refund" and refund["charge"] == obj["id"]
                ],
                "has_more": False,
                "url": f"/v1/charges/{obj['id']}/refunds",
            }
        elif head in obj and value is None:
            return
        elif isinstance(value, str) and value in self._store.objects:
            value = copy.deepcopy(self._store.objects[value])
        elif not isinstance(value, dict):
            raise StandInError(400, f"This property cannot be expanded ({path}).", param="expand")
        if rest:
            self._expand(value, rest, path)
        obj[head] = value


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
            return _page(404, "Not found.")
        session_id, action = match[1], match[2]
        if method == "GET" and action is None:
            with self._store.lock:
                session = copy.deepcopy(self._store.objects.get(session_id))
                items = copy.deepcopy(self._sessions.line_items(session_id))
            if session is None or session["object"] != "checkout.session":
                return _page(404, "No such Checkout Session.")
            return _page(200, _checkout_html(session, items))
        if method != "POST" or action is None:
            return _page(405, "Method not allowed.")
        try:
            (self._pay if action == "pay" else self._decline)(session_id)
        except StandInError as error:
            return _page(error.status, html.escape(error.message))
        with self._store.lock:
            session = self._store.objects[session_id]
            success_url, cancel_url = (session[key] for key in _RETURN_URLS)
        page_url = f"{self._page_base()}/checkout/{session_id}"
        if action == "pay":
            # Stripe fills the {CHECKOUT_SESSION_ID} template in success_url only.
            target = (success_url or page_url).replace("{CHECKOUT_SESSION_ID}", session_id)
        else:
            target = cancel_url or page_url
        return Response(303, b"", {"Location": target})


class Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], api: Api, page: CheckoutPage) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.page = page


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 closes every connection, so stop() really does cut clients off.
    protocol_version = "HTTP/1.0"
    server_version = "StripeStandIn/1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        assert isinstance(self.server, Server)
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        if url.path.startswith("/v1/"):
            response = self.server.api.handle(
                method,
                url.path,
                url.query if method == "GET" else body,
                self.headers.get("Authorization"),
                self.headers.get("Idempotency-Key"),
                self.headers.get("Stripe-Version"),
            )
        else:
            response = self.server.page.handle(method, url.path)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.info("%s %s", self.address_string(), format % args)


def _unrecognized(method: str, path: str) -> StandInError:
    return StandInError(
        404,
        f"Unrecognized request URL ({method}: {path}). The Stripe stand-in does not model it.",
    )


def _dumps(obj: JSONObject) -> bytes:
    return json.dumps(obj, indent=2).encode()


def _page(status: int, body_html: str) -> Response:
    document = f"<!doctype html><meta charset=utf-8><title>Stripe stand-in</title>{body_html}"
    return Response(status, document.encode(), {"Content-Type": "text/html; charset=utf-8"})


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
    action = f"/checkout/{html.escape(session['id'])}"
    return (
        f'{summary}<form method="post" action="{action}/pay"><button>Pay</button></form>'
        f'<form method="post" action="{action}/decline"><button>Decline</button></form>'
    )
