"""The soak's traffic: what a shop's customers and Stripe do, one operation at a time, each
timed and recorded (``bench/soak.py`` paces them and reports).

Operations, drawn by weight: browsing (the catalogue, a service, its variants: anonymous),
booking, paying (the payment link, then Stripe takes the money and delivers its webhooks, as the
stand-in does for a real checkout), cancelling, and Stripe delivering an event again (a
duplicate). Booked orders nobody pays or cancels lapse, and the consumer's expiry job cancels
them. Each request is a new connection, as clients and Stripe open them.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from fault_rig import call

# Operation -> weight: a shop's day is mostly browsing; most bookings are paid, some cancelled,
# the rest lapse. Stripe retries a share of its deliveries (a duplicate).
WEIGHTS = {"browse": 45, "book": 22, "pay": 15, "cancel": 5, "duplicate webhook": 13}
# A booking older than this is left to lapse (the soak's reservation is 120 s): paying it at
# the edge would measure the late-payment path, which the fault suite proves.
PAYABLE_FOR_S = 80.0


@dataclass(frozen=True)
class Sample:
    operation: str
    status: int  # 0: no answer (connection refused or reset)
    seconds: float
    started: float  # epoch seconds


@dataclass
class Booking:
    order_id: str
    token: str
    booked_at: float


class Shop:
    """The customers, the catalogue they see and the orders they hold, shared by the soak's
    threads; ``samples`` is every timed request."""

    def __init__(
        self,
        site: str,
        standin: Any,
        tokens: list[str],
        services: list[str],
        variants: list[str],
        seed: int,
    ) -> None:
        self.site, self.standin = site, standin
        self.tokens, self.services, self.variants = tokens, services, variants
        self.samples: list[Sample] = []
        self._pending: deque[Booking] = deque()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def pick(self) -> str:
        with self._rng_lock:
            return self._rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0]

    def _choice(self, items: list[Any]) -> Any:
        with self._rng_lock:
            return self._rng.choice(items)

    def run(self, operation: str) -> None:
        {
            "browse": self.browse,
            "book": self.book,
            "pay": self.pay,
            "cancel": self.cancel,
            "duplicate webhook": self.duplicate_webhook,
        }[operation]()

    def _timed(self, operation: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """One request, recorded; ``path`` is the site's, or a whole URL the site handed out."""
        url = path if path.startswith("http") else f"{self.site}{path}"
        started, clock = time.time(), time.perf_counter()
        status, body = call(method, url, timeout=30, **kwargs)
        self.samples.append(Sample(operation, status, time.perf_counter() - clock, started))
        return status, body

    def browse(self) -> None:
        service = self._choice(self.services)
        path = self._choice(
            ["/api/services/", f"/api/services/{service}/", f"/api/services/{service}/variants/"]
        )
        self._timed("browse", "GET", path)

    def book(self) -> None:
        token = self._choice(self.tokens)
        body = {"variant_id": self._choice(self.variants)}
        status, answer = self._timed("book", "POST", "/api/orders/", token=token, body=body)
        if status == 201:
            with self._lock:
                self._pending.append(Booking(answer["data"]["id"], token, time.monotonic()))

    def _take_booking(self) -> Booking | None:
        """The newest booking still worth paying or cancelling; older ones are left to lapse."""
        with self._lock:
            while self._pending:
                booking = self._pending.pop()
                if time.monotonic() - booking.booked_at < PAYABLE_FOR_S:
                    return booking
                self._pending.clear()  # every older one is older still
        return None

    def pay(self) -> None:
        """The customer asks for the payment link and opens it (the site creates the Checkout
        Session at Stripe and redirects there); Stripe takes the money and delivers
        ``checkout.session.completed`` and ``payment_intent.succeeded`` to the site, timed by
        the stand-in as ``webhook``."""
        booking = self._take_booking()
        if booking is None:
            return
        path = f"/api/orders/{booking.order_id}/checkout/"
        status, answer = self._timed("checkout", "POST", path, token=booking.token)
        if status != 200:
            return
        status, _ = self._timed("payment link", "GET", answer["data"]["payment_url"], follow=False)
        if status != 303:
            return
        session = self._session_of(booking.order_id)
        if session:
            self.standin.pay(session)

    @staticmethod
    def _session_of(order_id: str) -> str | None:
        from django.db import close_old_connections

        from marketlink.orders.models import RepairOrder

        try:
            return (
                RepairOrder.objects.filter(pk=order_id)
                .values_list("checkout_session_id", flat=True)
                .first()
            )
        finally:
            close_old_connections()

    def cancel(self) -> None:
        booking = self._take_booking()
        if booking is not None:
            path = f"/api/orders/{booking.order_id}/cancel/"
            self._timed("cancel", "POST", path, token=booking.token)

    def duplicate_webhook(self) -> None:
        """Stripe delivers an event it already delivered (its retry after a lost answer)."""
        delivered = [d.event_id for d in self.standin.deliveries[-200:] if d.status == 200]
        if delivered:
            self.standin.redeliver(self._choice(delivered))
