"""Webhook delivery: Stripe's signature, the POST to the endpoint, and the record of every try.

Whether an event was ever acknowledged (a 2xx) is what the Events API's ``delivery_success``
filter answers from, so it is kept here beside the attempts."""

import hashlib
import hmac
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any

from marketlink.testing.stripe.common import JSONObject

_log = logging.getLogger(__name__)

_DELIVERY_TIMEOUT = 10.0


@dataclass(frozen=True)
class Delivery:
    """One try. ``status`` 0: the receiver could not be reached, or (``dropped``) the stand-in
    was told to lose the delivery and never sent it. ``started`` (epoch seconds) and
    ``seconds`` (how long the receiver took to answer) let a load test time its webhooks."""

    event_id: str
    url: str
    status: int
    dropped: bool = False
    started: float = 0.0
    seconds: float = 0.0


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


class WebhookDelivery:
    """The endpoint (``url``, ``secret``), the levers (``auto_deliver``, ``drop``) and the log."""

    def __init__(
        self, *, secret: str, url: str | None, auto_deliver: bool, lock: threading.RLock
    ) -> None:
        self.secret = secret
        self.url = url
        self.auto_deliver = auto_deliver
        self.drop = False
        self._lock = lock
        self._attempts: list[Delivery] = []
        self._acknowledged: set[str] = set()

    @property
    def attempts(self) -> list[Delivery]:
        with self._lock:
            return list(self._attempts)

    def acknowledged(self, event_id: str) -> bool:
        """Whether some delivery of the event was answered 2xx (Stripe's delivery success)."""
        with self._lock:
            return event_id in self._acknowledged

    def sign(self, payload: bytes, timestamp: int | None = None, secret: str | None = None) -> str:
        # The real clock, not the store's: the receiver checks the timestamp against its own.
        signed_at = int(time.time()) if timestamp is None else timestamp
        key = (self.secret if secret is None else secret).encode()
        digest = hmac.new(key, f"{signed_at}.".encode() + payload, hashlib.sha256).hexdigest()
        return f"t={signed_at},v1={digest}"

    def emitted(self, events: Iterable[JSONObject]) -> None:
        """What Stripe does with new events: deliver each in turn, or lose it under ``drop``."""
        if not (self.auto_deliver and self.url):
            return
        for event in events:
            if self.drop:
                _log.info("webhook %s %s dropped on request", event["type"], event["id"])
                self._record(Delivery(event["id"], self.url, 0, dropped=True))
            else:
                self.deliver(event)

    def deliver(self, event: Mapping[str, Any], url: str | None = None) -> int:
        target = url or self.url
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
        started, clock = time.time(), time.perf_counter()
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
        seconds = time.perf_counter() - clock
        self._record(Delivery(event["id"], target, status, started=started, seconds=seconds))
        return status

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self._attempts.append(delivery)
            if 200 <= delivery.status < 300:
                self._acknowledged.add(delivery.event_id)
