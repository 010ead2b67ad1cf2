"""The HTTP layer: the API under ``/v1/`` (faults, Bearer authentication, idempotency keys, the
``Stripe-Account`` header) and the hosted pages (``/checkout/``, ``/connect/``).

Idempotency keys follow Stripe's rules (see ``idempotency``): an answer is saved once the
endpoint has begun executing, errors included, and replayed for 24 hours; the faults injected
here (``down``, ``fail_next``) stand for failures before Stripe's API is reached, so nothing is
saved for them."""

import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import urlsplit

from marketlink.testing.stripe.common import (
    JSONObject,
    RecordedRequest,
    StandInError,
    Store,
    new_id,
)
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.idempotency import IdempotencyKeys
from marketlink.testing.stripe.params import parse_form
from marketlink.testing.stripe.responses import Response, dumps, page
from marketlink.testing.stripe.routes import Router

_log = logging.getLogger(__name__)


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
        router: Router,
        events: Events,
        transaction: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.api_key = api_key
        self.latency = 0.0
        self.down = False
        self.required_version: str | None = None
        self._store = store
        self._router = router
        self._events = events
        self._transaction = transaction
        self._keys = IdempotencyKeys(store)
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

    def handle(self, method: str, path: str, raw: str, headers: Mapping[str, str]) -> Response:
        """Answer one request; ``headers``: its ``Authorization``, ``Idempotency-Key``,
        ``Stripe-Version`` and ``Stripe-Account`` (any may be missing)."""
        if self.latency > 0:
            time.sleep(self.latency)
        request_id = new_id("req")
        key = headers.get("Idempotency-Key") if method == "POST" else None
        version = headers.get("Stripe-Version")
        params: JSONObject = {}
        answer_headers = {"Content-Type": "application/json", "Request-Id": request_id}
        with self._transaction():
            self._events.current_request = {"id": request_id, "idempotency_key": key}
            try:
                params = parse_form(raw)
                self._check_version(version)
                status, body = self._respond(method, path, params, headers, answer_headers)
            except StandInError as error:
                status, body = error.status, dumps(error.body())
            except Exception:  # a stand-in bug must reach the test as an error, not a dead socket
                _log.exception("the stand-in failed on %s %s", method, path)
                crash = StandInError(500, "The Stripe stand-in crashed.", error_type="api_error")
                status, body = crash.status, dumps(crash.body())
            finally:
                self._events.current_request = None
            self._requests.append(
                RecordedRequest(
                    method, path, params, key, status, version, headers.get("Stripe-Account")
                )
            )
        return Response(status, body, answer_headers)

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
        headers: Mapping[str, str],
        answer_headers: dict[str, str],
    ) -> tuple[int, bytes]:
        if self.down:
            raise StandInError(503, "The Stripe stand-in is down.", error_type="api_error")
        if self._failures > 0:
            self._failures -= 1
            raise StandInError(
                self._failure_status, "Injected failure (fail_next).", error_type="api_error"
            )
        self._authenticate(headers.get("Authorization"))
        acting, key = headers.get("Stripe-Account"), headers.get("Idempotency-Key")
        if method != "POST" or key is None:
            return 200, dumps(self._router.route(method, path, params, acting))
        fingerprint = json.dumps([method, path, params], sort_keys=True)
        saved = self._keys.replay(acting, key, fingerprint)
        if saved is not None:
            status, body = saved
            answer_headers["Idempotent-Replayed"] = "true"
        else:
            try:
                status, body = 200, dumps(self._router.route(method, path, params, acting))
            except StandInError as error:
                if not error.saved:
                    raise
                status, body = error.status, dumps(error.body())
            self._keys.save(acting, key, fingerprint, status, body)
        if status >= 500:
            # Retrying would only replay the saved failure; the SDK honours this header.
            answer_headers["Stripe-Should-Retry"] = "false"
        return status, body

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


class Page(Protocol):
    def handle(self, method: str, path: str) -> Response: ...


class Server(ThreadingHTTPServer):
    """``pages``: the hosted pages by the first segment of their path."""

    def __init__(self, address: tuple[str, int], api: Api, pages: Mapping[str, Page]) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.pages = pages


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
        section = url.path.split("/")[1] if url.path.count("/") > 1 else ""
        if url.path.startswith("/v1/"):
            headers = {
                name: value
                for name in ("Authorization", "Idempotency-Key", "Stripe-Version", "Stripe-Account")
                if (value := self.headers.get(name)) is not None
            }
            raw = url.query if method == "GET" else body
            response = self.server.api.handle(method, url.path, raw, headers)
        elif section in self.server.pages:
            response = self.server.pages[section].handle(method, url.path)
        else:
            response = page(404, "Not found.")
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.info("%s %s", self.address_string(), format % args)
