"""``StripeStandIn``: the parts (sessions, intents, refunds, connected accounts, transfers,
events, delivery, the HTTP layer and the hosted pages) put together behind the one object a test
holds, with the levers it pulls (Connect's are in ``connect_levers``)."""

import copy
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from marketlink.testing.stripe.accounts import ConnectedAccounts
from marketlink.testing.stripe.checkout_page import CheckoutPage
from marketlink.testing.stripe.common import JSONObject, RecordedRequest, Store
from marketlink.testing.stripe.connect_levers import ConnectLevers
from marketlink.testing.stripe.connect_pages import ConnectPages
from marketlink.testing.stripe.delivery import Delivery, WebhookDelivery
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.intents import PaymentIntents
from marketlink.testing.stripe.refunds import Refunds
from marketlink.testing.stripe.routes import Router
from marketlink.testing.stripe.server import Api, Page, Server
from marketlink.testing.stripe.sessions import CheckoutSessions
from marketlink.testing.stripe.transfers import Transfers


class StripeStandIn(ConnectLevers):
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
        connect_webhook_secret: str = "whsec_connect_standin",
        connect_webhook_url: str | None = None,
        platform_country: str = "US",
        auto_deliver: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._host = host
        self._port = port
        self._server: Server | None = None
        self._thread: threading.Thread | None = None
        self._store = store = Store()
        self._delivery, self._connect_delivery = (
            WebhookDelivery(secret=secret, url=url, auto_deliver=auto_deliver, lock=store.lock)
            for secret, url in (
                (webhook_secret, webhook_url),
                (connect_webhook_secret, connect_webhook_url),
            )
        )
        self._events = events = Events(
            store,
            has_endpoint=lambda connect: self._endpoint(connect).url is not None,
            acknowledged=lambda event_id: any(
                delivery.acknowledged(event_id)
                for delivery in (self._delivery, self._connect_delivery)
            ),
        )
        self._sessions = CheckoutSessions(store, PaymentIntents(store), events)
        self._refunds = Refunds(store, events)
        self._accounts = ConnectedAccounts(store, events, platform_country=platform_country)
        self._transfers = Transfers(store, events, self._accounts)
        router = Router(
            api_key=lambda: self.api_key,
            store=store,
            sessions=self._sessions,
            refunds=self._refunds,
            events=events,
            accounts=self._accounts,
            transfers=self._transfers,
            page_base=lambda: self.api_base,
        )
        self._api = Api(
            api_key=api_key,
            store=store,
            router=router,
            events=events,
            transaction=self._transaction,
        )
        self._pages: dict[str, Page] = {
            "checkout": CheckoutPage(
                store=store,
                sessions=self._sessions,
                page_base=lambda: self.api_base,
                pay=self.pay,
                decline=self.fail,
            ),
            "connect": ConnectPages(
                accounts=self._accounts, transfers=self._transfers, transaction=self._transaction
            ),
        }

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> "StripeStandIn":
        """Listen; after ``stop()`` the same port is reused so ``api_base`` stays valid."""
        if self._server is not None:
            raise RuntimeError("the stand-in is already running")
        self._server = Server((self._host, self._port), self._api, self._pages)
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

    # -- configuration and levers (plain attributes to the test) --------------------------

    @property
    def api_key(self) -> str:
        return self._api.api_key

    @api_key.setter
    def api_key(self, value: str) -> None:
        self._api.api_key = value

    @property
    def webhook_secret(self) -> str:
        return self._delivery.secret

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self._delivery.secret = value

    @property
    def webhook_url(self) -> str | None:
        return self._delivery.url

    @webhook_url.setter
    def webhook_url(self, value: str | None) -> None:
        self._delivery.url = value

    @property
    def auto_deliver(self) -> bool:
        return self._delivery.auto_deliver

    @auto_deliver.setter
    def auto_deliver(self, value: bool) -> None:
        self._delivery.auto_deliver = self._connect_delivery.auto_deliver = value

    @property
    def drop_deliveries(self) -> bool:
        """While true, new events are kept (and listed) but their deliveries are lost, to both
        endpoints."""
        return self._delivery.drop

    @drop_deliveries.setter
    def drop_deliveries(self, value: bool) -> None:
        self._delivery.drop = self._connect_delivery.drop = value

    @property
    def clock_offset(self) -> float:
        """Seconds added to the stand-in's clock (negative: the past)."""
        return self._store.clock_offset

    @clock_offset.setter
    def clock_offset(self, value: float) -> None:
        self._store.clock_offset = value

    @property
    def latency(self) -> float:
        return self._api.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._api.latency = value

    @property
    def required_version(self) -> str | None:
        return self._api.required_version

    @required_version.setter
    def required_version(self, value: str | None) -> None:
        self._api.required_version = value

    @property
    def down(self) -> bool:
        return self._api.down

    @down.setter
    def down(self, value: bool) -> None:
        self._api.down = value

    @property
    def refund_status(self) -> str:
        """A new refund's status: "succeeded" (cards, usually), "pending" or
        "requires_action"; settle it later with settle_refund()."""
        return self._refunds.status_for_new

    @refund_status.setter
    def refund_status(self, value: str) -> None:
        self._refunds.status_for_new = value

    def fail_next(self, n: int, status: int = 500) -> None:
        self._api.fail_next(n, status)

    # -- inspection ------------------------------------------------------------------------

    @property
    def sessions(self) -> dict[str, JSONObject]:
        return self._store.copies("checkout.session")

    @property
    def payment_intents(self) -> dict[str, JSONObject]:
        return self._store.copies("payment_intent")

    @property
    def refunds(self) -> dict[str, JSONObject]:
        return self._store.copies("refund")

    @property
    def events(self) -> list[JSONObject]:
        """Every event in emission order, also those past the Events API's 30 days."""
        return list(self._store.copies("event").values())

    @property
    def requests_log(self) -> list[RecordedRequest]:
        return self._api.requests

    @property
    def deliveries(self) -> list[Delivery]:
        return self._delivery.attempts

    # -- what the customer and Stripe do ---------------------------------------------------

    def pay(self, session_id: str, *, async_payment: bool = False) -> JSONObject:
        """Complete the session; with ``async_payment`` the money arrives later (bank debits)."""
        with self._transaction():
            return copy.deepcopy(self._sessions.pay(session_id, async_payment=async_payment))

    def succeed_async(self, session_id: str) -> JSONObject:
        with self._transaction():
            return copy.deepcopy(self._sessions.succeed_async(session_id))

    def fail_async(self, session_id: str) -> JSONObject:
        with self._transaction():
            return copy.deepcopy(self._sessions.fail_async(session_id))

    def fail(self, session_id: str) -> JSONObject:
        """A declined card: the session stays open for another attempt on the same intent."""
        with self._transaction():
            return copy.deepcopy(self._sessions.decline(session_id))

    def expire(self, session_id: str) -> JSONObject:
        with self._transaction():
            return copy.deepcopy(self._sessions.expire(session_id))

    def refund(
        self,
        payment_intent_id: str,
        amount: int | None = None,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> JSONObject:
        """A refund made outside marketlink (Stripe's Dashboard)."""
        with self._transaction():
            refund = self._refunds.refund(payment_intent_id, amount, reason, metadata or {})
            return copy.deepcopy(refund)

    def settle_refund(self, refund_id: str, status: str = "succeeded") -> JSONObject:
        """The bank's last word on a pending refund: ``succeeded``, ``failed`` or ``canceled``."""
        with self._transaction():
            return copy.deepcopy(self._refunds.settle(refund_id, status))

    def dispute(self, payment_intent_id: str, *, reason: str = "fraudulent") -> JSONObject:
        """The customer's bank disputes a payment (a chargeback)."""
        with self._transaction():
            return copy.deepcopy(self._refunds.dispute(payment_intent_id, reason))

    def close_dispute(self, dispute_id: str, *, won: bool) -> JSONObject:
        with self._transaction():
            return copy.deepcopy(self._refunds.close_dispute(dispute_id, won=won))

    # -- webhooks --------------------------------------------------------------------------

    def sign(self, payload: bytes, timestamp: int | None = None, secret: str | None = None) -> str:
        """The ``Stripe-Signature`` header value Stripe would send with ``payload``."""
        return self._delivery.sign(payload, timestamp, secret)

    def deliver(self, event: Mapping[str, object], url: str | None = None) -> int:
        """POST ``event`` signed now; returns the receiver's status, 0 if it was unreachable.
        An event with an ``account`` goes to the Connect endpoint, signed with its secret.
        An explicit delivery is made even while ``drop_deliveries`` is set."""
        return self._endpoint("account" in event).deliver(event, url)

    def redeliver(self, event_id: str, url: str | None = None) -> int:
        with self._store.lock:
            event = copy.deepcopy(self._store.get("event", event_id, "id"))
        return self.deliver(event, url)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Change state under the lock; deliver what it emitted once the lock is let go, so a
        receiver may call the API back."""
        with self._store.lock:
            yield
            pending = self._events.take_pending()
        for connect in (False, True):
            self._endpoint(connect).emitted(
                event for event in pending if ("account" in event) == connect
            )

    def _endpoint(self, connect: bool) -> WebhookDelivery:
        return self._connect_delivery if connect else self._delivery
