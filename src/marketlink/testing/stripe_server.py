"""A local stand-in for the slice of Stripe's HTTP API that marketlink's Stripe gateway uses.

Why it exists: Stripe's servers are unreachable from the machines our tests run on, and
localstripe, the usual fake, has no Checkout Sessions. Mocking the SDK would only test our
assumptions about Stripe; this server lets the real ``stripe`` SDK run unmodified over real
HTTP, so request encoding, error mapping, retries, idempotency keys and webhook signatures are
all exercised. It uses only the standard library and never imports ``stripe`` or Django.

Pointing stripe-python 16 at it (plain ``http://`` works; the SDK does not insist on TLS)::

    standin = StripeStandIn(webhook_url="http://127.0.0.1:8000/api/webhooks/payment/").start()
    client = stripe.StripeClient("sk_test_standin", base_addresses={"api": standin.api_base})
    session = client.v1.checkout.sessions.create(params={...})

or, for code that uses the module-level configuration and resource classes::

    stripe.api_key = "sk_test_standin"
    stripe.api_base = standin.api_base
    stripe.checkout.Session.create(...)

The SDK retries 5xx answers and connection errors (``max_network_retries``, 2 by default for both
styles) with the same ``Idempotency-Key``; pass ``max_network_retries=0`` when a test wants the
first failure to surface.

What is modelled: Checkout Sessions in ``mode=payment`` with ``price_data`` line items, the
payment intents and charges that paying them creates, refunds, events, a hosted checkout page at
``session.url``, Bearer authentication, idempotency keys, and fault injection (``latency``,
``fail_next()``, ``down``; ``stop()`` makes the port refuse connections, ``start()`` reopens it).
Parameters outside that slice are rejected as unknown, as Stripe rejects misspelt ones, so the
gateway cannot silently rely on something the stand-in ignores. ``expires_at`` is checked as
strictly as Stripe checks it (30 minutes to 24 hours after creation, measured on arrival), but
sessions never expire by the clock: tests call ``expire()``.

The hosted page has two buttons. Pay completes the session and redirects (303) to
``success_url`` with ``{CHECKOUT_SESSION_ID}`` filled in; Decline records a declined card and
redirects to ``cancel_url`` untouched (Stripe only fills the template in ``success_url``).

Idempotency: only successful POSTs are remembered, since Stripe saves no result for requests
that fail validation and injected faults stand for failures before Stripe's API is reached.

Webhooks: events are delivered synchronously, in emission order, by the thread that caused them
(a control method, or the server thread answering an API call), after the state lock has been
released so a receiver may call the API back. When ``pay()`` returns, the receiver has already
answered each of its events, so tests need no ``flush()``. Every attempt is recorded in
``deliveries`` (status 0 when the receiver could not be reached; redirects count as failures,
as they do for Stripe). Stripe does not guarantee event order; use ``deliver()`` or
``redeliver()`` to replay events in any order. With ``auto_deliver=False`` events are only
stored.

Run by hand (blocks until Ctrl-C)::

    python -m marketlink.testing.stripe_server --port 12111 \\
        --webhook-url http://127.0.0.1:8000/api/webhooks/payment/ --webhook-secret whsec_x
"""

import argparse
import copy
import hashlib
import hmac
import html
import json
import logging
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

__all__ = ["API_VERSION", "Delivery", "RecordedRequest", "StandInError", "StripeStandIn", "main"]

# The version stripe-python 16.1 pins; events carry it as an endpoint created with that SDK would.
API_VERSION = "2026-10-28.endive"

JSONObject = dict[str, Any]

_log = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")
_MIN_EXPIRY = 30 * 60
_MAX_EXPIRY = 24 * 60 * 60
_REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
_DECLINE = {
    "type": "card_error",
    "code": "card_declined",
    "decline_code": "generic_decline",
    "message": "Your card was declined.",
}
_DELIVERY_TIMEOUT = 10.0
# API path segment -> (object type, the name Stripe gives the id in "No such ..." errors).
_RETRIEVABLE = {
    "checkout/sessions": ("checkout.session", "session"),
    "payment_intents": ("payment_intent", "intent"),
    "charges": ("charge", "charge"),
    "refunds": ("refund", "refund"),
    "events": ("event", "id"),
}
_RETRIEVE = re.compile(rf"/v1/({'|'.join(_RETRIEVABLE)})/([^/]+)")
_EXPIRE = re.compile(r"/v1/checkout/sessions/([^/]+)/expire")
_PAGE = re.compile(r"/checkout/([^/]+)(?:/(pay|decline))?")
_RETURN_URLS = ("success_url", "cancel_url")


class StandInError(Exception):
    """An error in Stripe's shape; control methods raise it for the misuse the API would refuse."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code

    def body(self) -> JSONObject:
        error: JSONObject = {"type": self.error_type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
        return {"error": error}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: JSONObject
    idempotency_key: str | None
    status: int
    stripe_version: str | None = None


@dataclass(frozen=True)
class Delivery:
    event_id: str
    url: str
    status: int


class _Response(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None


# Webhook receivers are local test servers: an HTTP(S)_PROXY from the environment must not
# swallow them, and Stripe does not follow redirects either.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


class StripeStandIn:
    """Stripe as seen over HTTP, plus the levers a test needs to play the customer and the bank.

    One lock guards all state, shared by the server's request threads and the test's own calls;
    the accessors hand out copies, so a test never races the server through a shared dict.
    State survives ``stop()``/``start()``, as a real outage would leave Stripe's data intact.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk_test_standin",
        webhook_secret: str = "whsec_standin",
        webhook_url: str | None = None,
        auto_deliver: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.webhook_url = webhook_url
        self.auto_deliver = auto_deliver
        self.latency = 0.0
        self.down = False
        # What a new refund's status is: "succeeded" (cards, usually), "pending" or
        # "requires_action"; settle it later with settle_refund().
        self.refund_status = "succeeded"
        # When set, a request whose Stripe-Version header differs is refused (400), as Stripe
        # refuses a version it does not know: proves a client pins the version it speaks.
        self.required_version: str | None = None
        self._host = host
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._objects: dict[str, JSONObject] = {}
        self._line_items: dict[str, list[JSONObject]] = {}
        self._intent_metadata: dict[str, dict[str, str]] = {}
        self._idempotent: dict[str, tuple[str, bytes]] = {}
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[Delivery] = []
        self._pending: list[JSONObject] = []
        self._current_request: dict[str, str | None] | None = None
        self._failures = 0
        self._failure_status = 500

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "StripeStandIn":
        """Listen; after ``stop()`` the same port is reused so ``api_base`` stays valid."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        self._server = _Server((self._host, self._port), self)
        self._port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stripe-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the socket, so clients see connection refused; state is kept."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> "StripeStandIn":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        if self._port == 0:
            raise RuntimeError("start() the stand-in first")
        return f"http://{self._host}:{self._port}"

    # -- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 500) -> None:
        with self._lock:
            self._failures = n
            self._failure_status = status

    # -- inspection ------------------------------------------------------------------------

    @property
    def sessions(self) -> dict[str, JSONObject]:
        return self._all("checkout.session")

    @property
    def payment_intents(self) -> dict[str, JSONObject]:
        return self._all("payment_intent")

    @property
    def refunds(self) -> dict[str, JSONObject]:
        return self._all("refund")

    @property
    def events(self) -> list[JSONObject]:
        return list(self._all("event").values())

    @property
    def requests_log(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def _all(self, object_type: str) -> dict[str, JSONObject]:
        with self._lock:
            return {
                key: copy.deepcopy(value)
                for key, value in self._objects.items()
                if value["object"] == object_type
            }

    # -- what the customer and Stripe do ---------------------------------------------------

    def pay(self, session_id: str, *, async_payment: bool = False) -> JSONObject:
        """Complete the session; with ``async_payment`` the money arrives later (bank debits)."""
        with self._transaction():
            session = self._open_session(session_id)
            intent = self._intent_for(session)
            session.update(
                status="complete", url=None, customer_details={"email": session["customer_email"]}
            )
            if async_payment:
                intent.update(status="processing", last_payment_error=None)
                self._emit("checkout.session.completed", session)
            else:
                self._succeed(session, intent)
                self._emit("checkout.session.completed", session)
                self._emit("payment_intent.succeeded", intent)
            return copy.deepcopy(intent)

    def succeed_async(self, session_id: str) -> JSONObject:
        with self._transaction():
            session, intent = self._awaiting_funds(session_id)
            self._succeed(session, intent)
            self._emit("checkout.session.async_payment_succeeded", session)
            self._emit("payment_intent.succeeded", intent)
            return copy.deepcopy(intent)

    def fail_async(self, session_id: str) -> JSONObject:
        with self._transaction():
            session, intent = self._awaiting_funds(session_id)
            intent.update(status="requires_payment_method", last_payment_error=dict(_DECLINE))
            self._emit("checkout.session.async_payment_failed", session)
            self._emit("payment_intent.payment_failed", intent)
            return copy.deepcopy(intent)

    def fail(self, session_id: str) -> JSONObject:
        """A declined card: the session stays open for another attempt on the same intent."""
        with self._transaction():
            intent = self._intent_for(self._open_session(session_id))
            intent.update(status="requires_payment_method", last_payment_error=dict(_DECLINE))
            self._emit("payment_intent.payment_failed", intent)
            return copy.deepcopy(intent)

    def expire(self, session_id: str) -> JSONObject:
        with self._transaction():
            return copy.deepcopy(self._expire(session_id))

    def refund(
        self,
        payment_intent_id: str,
        amount: int | None = None,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> JSONObject:
        with self._transaction():
            refund = self._refund(payment_intent_id, amount, reason, dict(metadata or {}))
            return copy.deepcopy(refund)

    def settle_refund(self, refund_id: str, status: str = "succeeded") -> JSONObject:
        """The bank's last word on a pending refund: ``succeeded``, ``failed`` or ``canceled``.
        A refund that did not go through gives the charge its amount back, as Stripe's does."""
        if status not in {"succeeded", "failed", "canceled"}:
            raise ValueError(f"a refund cannot settle as {status!r}")
        with self._transaction():
            refund = self._get("refund", refund_id, "refund")
            refund["status"] = status
            if status != "succeeded":
                charge = self._objects[refund["charge"]]
                charge["amount_refunded"] -= refund["amount"]
                charge["refunded"] = False
                if status == "failed":
                    refund["failure_reason"] = "lost_or_stolen_card"
                    self._emit("refund.failed", refund)
            self._emit("refund.updated", refund)
            self._emit("charge.refund.updated", refund)
            return copy.deepcopy(refund)

    def dispute(self, payment_intent_id: str, *, reason: str = "fraudulent") -> JSONObject:
        """The customer's bank disputes a payment (a chargeback)."""
        with self._transaction():
            intent = self._get("payment_intent", payment_intent_id, "payment_intent")
            charge = self._objects[intent["latest_charge"]]
            dispute: JSONObject = {
                "id": _new_id("dp"),
                "object": "dispute",
                "livemode": False,
                "created": int(time.time()),
                "amount": charge["amount"],
                "currency": charge["currency"],
                "charge": charge["id"],
                "payment_intent": payment_intent_id,
                "reason": reason,
                "status": "needs_response",
                "metadata": {},
            }
            self._objects[dispute["id"]] = dispute
            charge["disputed"] = True
            self._emit("charge.dispute.created", dispute)
            return copy.deepcopy(dispute)

    def close_dispute(self, dispute_id: str, *, won: bool) -> JSONObject:
        with self._transaction():
            dispute = self._get("dispute", dispute_id, "dispute")
            dispute["status"] = "won" if won else "lost"
            self._emit("charge.dispute.closed", dispute)
            return copy.deepcopy(dispute)

    # -- webhooks --------------------------------------------------------------------------

    def sign(self, payload: bytes, timestamp: int | None = None, secret: str | None = None) -> str:
        """The ``Stripe-Signature`` header value Stripe would send with ``payload``."""
        signed_at = int(time.time()) if timestamp is None else timestamp
        key = (self.webhook_secret if secret is None else secret).encode()
        digest = hmac.new(key, f"{signed_at}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={signed_at},v1={digest}"

    def deliver(self, event: Mapping[str, Any], url: str | None = None) -> int:
        """POST ``event`` signed now; returns the receiver's status, 0 if it was unreachable."""
        target = url or self.webhook_url
        if target is None:
            raise ValueError("no webhook URL: pass url= or set webhook_url")
        payload = json.dumps(event, indent=2).encode()
        request = urllib.request.Request(  # noqa: S310 - test receivers are http(s) by design
            target,
            data=payload,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Stripe-Signature": self.sign(payload),
            },
        )
        try:
            with _OPENER.open(request, timeout=_DELIVERY_TIMEOUT) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
            error.close()
        except OSError as error:
            _log.warning("webhook %s to %s failed: %s", event["id"], target, error)
            status = 0
        _log.info("webhook %s %s -> %s", event["type"], target, status)
        with self._lock:
            self._deliveries.append(Delivery(event["id"], target, status))
        return status

    def redeliver(self, event_id: str, url: str | None = None) -> int:
        with self._lock:
            event = copy.deepcopy(self._get("event", event_id, "id"))
        return self.deliver(event, url)

    # -- state changes (all called with the lock held) -------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            yield
            pending, self._pending = self._pending, []
        if self.auto_deliver and self.webhook_url:
            for event in pending:
                self.deliver(event)

    def _emit(self, event_type: str, obj: JSONObject) -> None:
        event: JSONObject = {
            "id": _new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "livemode": False,
            "type": event_type,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": dict(self._current_request or {"id": None, "idempotency_key": None}),
            "data": {"object": copy.deepcopy(obj)},
        }
        self._objects[event["id"]] = event
        self._pending.append(event)

    def _get(self, object_type: str, object_id: str, param: str) -> JSONObject:
        obj = self._objects.get(object_id)
        if obj is None or obj["object"] != object_type:
            raise StandInError(
                404, f"No such {object_type}: '{object_id}'", param=param, code="resource_missing"
            )
        return obj

    def _open_session(self, session_id: str) -> JSONObject:
        session = self._get("checkout.session", session_id, "session")
        if session["status"] != "open":
            status = session["status"]
            raise StandInError(400, f"Checkout Session {session_id} is {status}, not open.")
        return session

    def _awaiting_funds(self, session_id: str) -> tuple[JSONObject, JSONObject]:
        session = self._get("checkout.session", session_id, "session")
        intent = self._objects.get(session["payment_intent"] or "")
        if session["status"] != "complete" or intent is None or intent["status"] != "processing":
            raise StandInError(400, f"Checkout Session {session_id} has no payment in flight.")
        return session, intent

    def _intent_for(self, session: JSONObject) -> JSONObject:
        """Stripe creates the intent at the first attempt and reuses it for later ones."""
        if session["payment_intent"] is not None:
            return self._objects[session["payment_intent"]]
        intent: JSONObject = {
            "id": _new_id("pi"),
            "object": "payment_intent",
            "livemode": False,
            "created": int(time.time()),
            "amount": session["amount_total"],
            "amount_received": 0,
            "currency": session["currency"],
            "status": "requires_payment_method",
            "capture_method": "automatic",
            "payment_method_types": ["card"],
            "metadata": dict(self._intent_metadata[session["id"]]),
            "latest_charge": None,
            "last_payment_error": None,
        }
        self._objects[intent["id"]] = intent
        session["payment_intent"] = intent["id"]
        return intent

    def _succeed(self, session: JSONObject, intent: JSONObject) -> None:
        charge: JSONObject = {
            "id": _new_id("ch"),
            "object": "charge",
            "livemode": False,
            "created": int(time.time()),
            "amount": intent["amount"],
            "amount_captured": intent["amount"],
            "amount_refunded": 0,
            "currency": intent["currency"],
            "captured": True,
            "paid": True,
            "refunded": False,
            "status": "succeeded",
            "payment_intent": intent["id"],
            "metadata": dict(intent["metadata"]),
        }
        self._objects[charge["id"]] = charge
        intent.update(
            status="succeeded",
            amount_received=intent["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
        )
        session["payment_status"] = "paid"

    def _expire(self, session_id: str) -> JSONObject:
        session = self._get("checkout.session", session_id, "session")
        if session["status"] != "open":
            raise StandInError(
                400, 'Only Checkout Sessions with a status in ["open"] can be expired.'
            )
        session.update(status="expired", url=None)
        self._emit("checkout.session.expired", session)
        return session

    def _refund(
        self, intent_id: str, amount: int | None, reason: str | None, metadata: dict[str, str]
    ) -> JSONObject:
        intent = self._get("payment_intent", intent_id, "payment_intent")
        if intent["status"] != "succeeded":
            raise StandInError(
                400,
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge = self._objects[intent["latest_charge"]]
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining == 0:
            raise StandInError(
                400,
                f"Charge {charge['id']} has already been refunded.",
                code="charge_already_refunded",
            )
        amount = remaining if amount is None else amount
        if amount < 1:
            raise StandInError(400, "Invalid positive integer", param="amount")
        if amount > remaining:
            raise StandInError(
                400,
                f"Refund amount ({amount}) is greater than unrefunded amount on charge "
                f"({remaining})",
                param="amount",
                code="amount_too_large",
            )
        refund: JSONObject = {
            "id": _new_id("re"),
            "object": "refund",
            "livemode": False,
            "created": int(time.time()),
            "amount": amount,
            "currency": charge["currency"],
            "charge": charge["id"],
            "payment_intent": intent_id,
            "reason": reason,
            "metadata": metadata,
            "status": self.refund_status,
        }
        self._objects[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._emit("charge.refunded", charge)
        self._emit("refund.created", refund)
        return refund

    # -- the HTTP API ----------------------------------------------------------------------

    def _handle_api(
        self,
        method: str,
        path: str,
        raw: str,
        authorization: str | None,
        key: str | None,
        version: str | None = None,
    ) -> _Response:
        if self.latency > 0:
            time.sleep(self.latency)
        request_id = _new_id("req")
        key = key if method == "POST" else None
        params: JSONObject = {}
        replayed = False
        with self._transaction():
            self._current_request = {"id": request_id, "idempotency_key": key}
            try:
                params = _parse_form(raw)
                self._check_version(version)
                status, body, replayed = self._respond(method, path, params, authorization, key)
            except StandInError as error:
                status, body = error.status, _dumps(error.body())
            except Exception:  # a stand-in bug must reach the test as an error, not a dead socket
                _log.exception("the stand-in failed on %s %s", method, path)
                crash = StandInError(500, "The Stripe stand-in crashed.", error_type="api_error")
                status, body = crash.status, _dumps(crash.body())
            finally:
                self._current_request = None
            self._requests.append(RecordedRequest(method, path, params, key, status, version))
        headers = {"Content-Type": "application/json", "Request-Id": request_id}
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        return _Response(status, body, headers)

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

    def _check_version(self, version: str | None) -> None:
        if self.required_version is not None and version != self.required_version:
            raise StandInError(
                400,
                f"Invalid Stripe API version: {version}; this stand-in speaks "
                f"{self.required_version}.",
                param="Stripe-Version",
            )

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
        expand = [_str(value, f"expand[{i}]") for i, value in enumerate(_list(params, "expand"))]
        if method == "POST" and path == "/v1/checkout/sessions":
            return self._expanded(self._create_session(params), expand)
        if method == "POST" and path == "/v1/refunds":
            return self._expanded(self._create_refund(params), expand)
        expiring = _EXPIRE.fullmatch(path)
        if method == "POST" and expiring:
            _only(params, {"expand"})
            return self._expanded(self._expire(expiring[1]), expand)
        retrieving = _RETRIEVE.fullmatch(path)
        if method == "GET" and retrieving:
            _only(params, {"expand"})
            object_type, param = _RETRIEVABLE[retrieving[1]]
            return self._expanded(self._get(object_type, retrieving[2], param), expand)
        raise StandInError(
            404,
            f"Unrecognized request URL ({method}: {path}). The Stripe stand-in does not model it.",
        )

    def _create_session(self, params: JSONObject) -> JSONObject:
        _only(
            params,
            {
                "mode",
                "line_items",
                "metadata",
                "payment_intent_data",
                "client_reference_id",
                "success_url",
                "cancel_url",
                "expires_at",
                "customer_email",
                "expand",
            },
        )
        if _required(params, "mode") != "payment":
            raise StandInError(400, "The Stripe stand-in only models mode=payment.", param="mode")
        now = int(time.time())
        expires_at = (
            _int(params["expires_at"], "expires_at")
            if "expires_at" in params
            else now + _MAX_EXPIRY
        )
        if expires_at < now + _MIN_EXPIRY:
            raise StandInError(
                400,
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session "
                "creation.",
                param="expires_at",
            )
        if expires_at > now + _MAX_EXPIRY:
            raise StandInError(
                400,
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session "
                "creation.",
                param="expires_at",
            )
        _required(params, "line_items")
        items = [
            _line_item(item, f"line_items[{i}]")
            for i, item in enumerate(_list(params, "line_items"))
        ]
        if len({item["currency"] for item in items}) > 1:
            raise StandInError(
                400, "All line items must use the same currency.", param="line_items"
            )
        intent_data = _dict(params, "payment_intent_data")
        _only(intent_data, {"metadata"}, "payment_intent_data")
        session_id = _new_id("cs_test")
        total = sum(item["amount_total"] for item in items)
        session: JSONObject = {
            "id": session_id,
            "object": "checkout.session",
            "livemode": False,
            "created": now,
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_subtotal": total,
            "amount_total": total,
            "currency": items[0]["currency"],
            "client_reference_id": _optional_str(params, "client_reference_id"),
            "customer_email": _optional_str(params, "customer_email"),
            "customer_details": None,
            "metadata": _metadata(params, "metadata"),
            "payment_intent": None,
            "payment_method_types": ["card"],
            "expires_at": expires_at,
            "success_url": _optional_str(params, "success_url"),
            "cancel_url": _optional_str(params, "cancel_url"),
            "url": f"{self.api_base}/checkout/{session_id}",
        }
        self._objects[session_id] = session
        self._line_items[session_id] = items
        self._intent_metadata[session_id] = _metadata(
            intent_data, "metadata", "payment_intent_data[metadata]"
        )
        return session

    def _create_refund(self, params: JSONObject) -> JSONObject:
        _only(params, {"payment_intent", "amount", "reason", "metadata", "expand"})
        intent_id = _str(_required(params, "payment_intent"), "payment_intent")
        amount = _int(params["amount"], "amount") if "amount" in params else None
        reason = _optional_str(params, "reason")
        if reason is not None and reason not in _REFUND_REASONS:
            raise StandInError(
                400,
                "Invalid reason: must be one of duplicate, fraudulent, or requested_by_customer",
                param="reason",
            )
        return self._refund(intent_id, amount, reason, _metadata(params, "metadata"))

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
                "data": copy.deepcopy(self._line_items[obj["id"]]),
                "has_more": False,
                "url": f"/v1/checkout/sessions/{obj['id']}/line_items",
            }
        elif head in obj and value is None:
            return
        elif isinstance(value, str) and value in self._objects:
            value = copy.deepcopy(self._objects[value])
        elif not isinstance(value, dict):
            raise StandInError(400, f"This property cannot be expanded ({path}).", param="expand")
        if rest:
            self._expand(value, rest, path)
        obj[head] = value

    # -- the hosted checkout page ----------------------------------------------------------

    def _handle_page(self, method: str, path: str) -> _Response:
        match = _PAGE.fullmatch(path)
        if match is None:
            return _page(404, "Not found.")
        session_id, action = match[1], match[2]
        if method == "GET" and action is None:
            with self._lock:
                session = copy.deepcopy(self._objects.get(session_id))
                items = copy.deepcopy(self._line_items.get(session_id, []))
            if session is None or session["object"] != "checkout.session":
                return _page(404, "No such Checkout Session.")
            return _page(200, _checkout_html(session, items))
        if method != "POST" or action is None:
            return _page(405, "Method not allowed.")
        try:
            if action == "pay":
                self.pay(session_id)
            else:
                self.fail(session_id)
        except StandInError as error:
            return _page(error.status, html.escape(error.message))
        with self._lock:
            success_url, cancel_url = (self._objects[session_id][key] for key in _RETURN_URLS)
        page_url = f"{self.api_base}/checkout/{session_id}"
        if action == "pay":
            # Stripe fills the {CHECKOUT_SESSION_ID} template in success_url only.
            target = (success_url or page_url).replace("{CHECKOUT_SESSION_ID}", session_id)
        else:
            target = cancel_url or page_url
        return _Response(303, b"", {"Location": target})


class _Server(ThreadingHTTPServer):
    def __init__(self, address: tuple[str, int], standin: StripeStandIn) -> None:
        super().__init__(address, _Handler)
        self.standin = standin


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
        assert isinstance(self.server, _Server)
        standin = self.server.standin
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        if url.path.startswith("/v1/"):
            response = standin._handle_api(
                method,
                url.path,
                url.query if method == "GET" else body,
                self.headers.get("Authorization"),
                self.headers.get("Idempotency-Key"),
                self.headers.get("Stripe-Version"),
            )
        else:
            response = standin._handle_page(method, url.path)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.info("%s %s", self.address_string(), format % args)


# -- form decoding and parameter checks --------------------------------------------------------


def _parse_form(raw: str) -> JSONObject:
    """Decode Stripe's bracket notation (``a[b][0][c]=v``) into nested dicts and lists."""
    root: JSONObject = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY.fullmatch(key)
        parts = [match[1], *re.findall(r"\[([^\[\]]*)\]", match[2])] if match else [key]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise StandInError(400, f"Invalid request: {key} conflicts with {part}.", param=key)
            node = child
        last = parts[-1] or str(len(node))  # "expand[]=x" appends, as curl examples do
        if isinstance(node.get(last), dict):
            raise StandInError(400, f"Invalid request: {key} conflicts with {last}.", param=key)
        node[last] = value
    return _listify(root)


def _listify(node: JSONObject) -> JSONObject:
    result: JSONObject = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _listify(value)
            if value and all(k.isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
        result[key] = value
    return result


def _param_name(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def _only(params: JSONObject, allowed: set[str], prefix: str = "") -> None:
    for key in params:
        if key not in allowed:
            name = _param_name(prefix, key)
            raise StandInError(
                400, f"Received unknown parameter: {name}", param=name, code="parameter_unknown"
            )


def _required(params: JSONObject, key: str, prefix: str = "") -> Any:
    if key not in params:
        name = _param_name(prefix, key)
        raise StandInError(
            400, f"Missing required param: {name}.", param=name, code="parameter_missing"
        )
    return params[key]


def _str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise StandInError(400, "Invalid string", param=param)
    return value


def _optional_str(params: JSONObject, key: str) -> str | None:
    return _str(params[key], key) if key in params else None


def _int(value: Any, param: str, minimum: int = 0) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise StandInError(400, f"Invalid integer: {value}", param=param)
    if int(value) < minimum:
        raise StandInError(
            400, f"This value must be greater than or equal to {minimum}.", param=param
        )
    return int(value)


def _dict(params: JSONObject, key: str, name: str | None = None) -> JSONObject:
    value = params.get(key, {})
    if not isinstance(value, dict):
        raise StandInError(400, "Invalid object", param=name or key)
    return value


def _list(params: JSONObject, key: str) -> list[Any]:
    value = params.get(key, [])
    if not isinstance(value, list):
        raise StandInError(400, "Invalid array", param=key)
    return value


def _metadata(params: JSONObject, key: str, name: str | None = None) -> dict[str, str]:
    """Stripe's limits, so an over-long order reference fails here rather than in production."""
    name = name or key
    metadata = _dict(params, key, name)
    if len(metadata) > 50:
        raise StandInError(400, "You can specify up to 50 metadata keys.", param=name)
    for meta_key, value in metadata.items():
        param = f"{name}[{meta_key}]"
        if len(meta_key) > 40:
            raise StandInError(400, "Metadata keys can be at most 40 characters.", param=param)
        if len(_str(value, param)) > 500:
            raise StandInError(400, "Metadata values can be at most 500 characters.", param=param)
    return dict(metadata)


def _line_item(raw: Any, name: str) -> JSONObject:
    if not isinstance(raw, dict):
        raise StandInError(400, "Invalid object", param=name)
    _only(raw, {"price_data", "quantity"}, name)
    price_name = f"{name}[price_data]"
    _required(raw, "price_data", name)
    price = _dict(raw, "price_data", price_name)
    _only(price, {"currency", "unit_amount", "product_data"}, price_name)
    currency = _str(_required(price, "currency", price_name), f"{price_name}[currency]").lower()
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise StandInError(400, f"Invalid currency: {currency}", param=f"{price_name}[currency]")
    unit_amount = _int(_required(price, "unit_amount", price_name), f"{price_name}[unit_amount]")
    product_name = f"{price_name}[product_data]"
    _required(price, "product_data", price_name)
    product = _dict(price, "product_data", product_name)
    _only(product, {"name"}, product_name)
    description = _str(_required(product, "name", product_name), f"{product_name}[name]")
    quantity = _int(_required(raw, "quantity", name), f"{name}[quantity]", minimum=1)
    return {
        "id": _new_id("li"),
        "object": "item",
        "description": description,
        "quantity": quantity,
        "currency": currency,
        "amount_subtotal": unit_amount * quantity,
        "amount_total": unit_amount * quantity,
        "price": {
            "id": _new_id("price"),
            "object": "price",
            "currency": currency,
            "unit_amount": unit_amount,
            "product": _new_id("prod"),
        },
    }


# -- small helpers -----------------------------------------------------------------------------


def _new_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def _dumps(obj: JSONObject) -> bytes:
    return json.dumps(obj, indent=2).encode()


def _page(status: int, body_html: str) -> _Response:
    document = f"<!doctype html><meta charset=utf-8><title>Stripe stand-in</title>{body_html}"
    return _Response(status, document.encode(), {"Content-Type": "text/html; charset=utf-8"})


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m marketlink.testing.stripe_server",
        description="Serve a local stand-in for Stripe's API until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--api-key", default="sk_test_standin")
    parser.add_argument("--webhook-url")
    parser.add_argument("--webhook-secret", default="whsec_standin")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    standin = StripeStandIn(
        api_key=args.api_key,
        webhook_secret=args.webhook_secret,
        webhook_url=args.webhook_url,
        host=args.host,
        port=args.port,
    )
    with standin:
        print(
            f"Stripe stand-in on {standin.api_base} (API key {args.api_key}); Ctrl-C stops it.",
            flush=True,
        )
        with suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
