"""The one small interface every payment gateway implements.

Gateways speak in provider terms (sessions, payment intents, minor units) and know nothing of
HTTP requests or order status rules: the payments modules decide what an answer means for an
order. Events reach marketlink through the signed webhook, whatever the gateway, or are fetched
back over the provider's authenticated API (``list_events``) when deliveries were lost.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from marketlink.exceptions import InvalidInput, PaymentProviderError

# Stripe refuses a Checkout Session that ends sooner than 30 minutes after it is created; a minute
# of margin covers clock drift and the request's travel.
MIN_CHECKOUT_LIFE = timedelta(minutes=31)
CHECKOUT_EXPIRY_STEP = timedelta(minutes=5)


class GatewayError(PaymentProviderError):
    """The provider could not be reached or refused a well-formed request (502).

    ``answered``: the provider decided the request (refused it: Stripe's 400, 402 and 404; or
    failed executing it: 500). Stripe saves such an answer under the request's idempotency key
    and replays it, so asking again under the same key cannot succeed. A request that was not
    decided (the network, a 503, a rate limit, the same key still in flight, or the key refused
    before anything ran) may be sent again as it was.

    ``no_access``: the key was refused access (Stripe's 401 and 403), to a connected account
    that is no longer the platform's, say, or for want of a right: not decided, and asking
    again passes only once access is back."""

    def __init__(
        self,
        message: str | None = None,
        *,
        answered: bool = False,
        no_access: bool = False,
        reason: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(message, **kwargs)
        self.answered = answered
        self.no_access = no_access
        # The provider's own name for a refusal (Stripe's ``code``: ``balance_insufficient``),
        # for the record a person reads; never decisive, as a provider may not document one.
        self.reason = reason


class InvalidSignature(InvalidInput):
    """A webhook whose signature, timestamp or body cannot be trusted (400)."""


class EventsOutOfReach(InvalidInput):
    """Events asked for from further back than the provider keeps them (Stripe: 30 days)."""


@dataclass(frozen=True)
class CheckoutRequest:
    """What a gateway needs to open a hosted checkout for one order."""

    order_id: str
    amount_minor: int
    currency: str
    description: str
    customer_email: str
    expires_at: datetime
    success_url: str
    cancel_url: str
    idempotency_key: str


@dataclass(frozen=True)
class RefundRequest:
    """One refund marketlink asks for: ``reference`` (its ``Refund`` row) and ``order_id``
    travel with it as metadata, so its events find the row and the order even before the
    request's answer is saved."""

    payment_intent_id: str
    amount_minor: int
    idempotency_key: str
    reference: str
    order_id: str


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    url: str
    status: str  # "open", "complete" or "expired", as Stripe says
    payment_status: str  # "paid", "unpaid" or "no_payment_required"
    payment_intent_id: str | None
    amount_minor: int | None = None
    currency: str | None = None


class EventKind(StrEnum):
    """What a provider event means for an order, whatever the provider calls it."""

    CHECKOUT_COMPLETED = "checkout_completed"  # ``paid`` says whether the money is in
    ASYNC_PAYMENT_SUCCEEDED = "async_payment_succeeded"
    ASYNC_PAYMENT_FAILED = "async_payment_failed"
    CHECKOUT_EXPIRED = "checkout_expired"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"  # one declined attempt
    CHARGE_REFUNDED = "charge_refunded"  # a payment reported (partly) refunded
    REFUND = "refund"  # a refund's own status
    DISPUTE = "dispute"  # opened, changed or closed
    # Connect: a connected account changed (its own events, or the platform's of transfers).
    ACCOUNT_UPDATED = "account_updated"
    CAPABILITY_UPDATED = "capability_updated"
    ACCOUNT_DEAUTHORIZED = "account_deauthorized"
    TRANSFER_CREATED = "transfer_created"
    TRANSFER_REVERSED = "transfer_reversed"  # also a partial reversal
    OTHER = "other"  # nothing marketlink acts on


@dataclass(frozen=True)
class ProviderRefund:
    """One refund as the provider reports it (an answer to a refund request, a listing, or an
    event about it)."""

    id: str | None
    # "succeeded", "pending", "requires_action", "failed" or "canceled", as Stripe says: only a
    # succeeded refund has given the money back.
    status: str
    amount_minor: int | None
    currency: str | None = None
    # The ``Refund`` row marketlink wrote before asking for it (sent as metadata), if it is ours.
    reference: str | None = None


@dataclass(frozen=True)
class ProviderAccount:
    """A connected account as the provider reports it. ``requirements_due``: what it must
    still provide, now or overdue, each once."""

    id: str
    country: str | None
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    transfers_active: bool
    requirements_due: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProviderReversal:
    id: str
    transfer_id: str
    amount_minor: int


@dataclass(frozen=True)
class ProviderTransfer:
    """A transfer to a connected account, with what was reversed of it."""

    id: str
    amount_minor: int
    currency: str
    destination: str
    transfer_group: str | None
    # The order id marketlink sent with it (metadata), if it is marketlink's.
    order_ref: str | None
    amount_reversed_minor: int = 0
    reversals: tuple[ProviderReversal, ...] = ()


@dataclass(frozen=True)
class ProviderEvent:
    """One provider event in marketlink's terms. Each gateway parses its own provider's JSON
    into this; nothing past the gateway reads the provider's shapes."""

    kind: EventKind
    event_id: str
    provider_type: str
    # The order id marketlink gave the provider (metadata), if the event carries it back.
    order_ref: str | None = None
    session_id: str | None = None
    payment_intent_id: str | None = None
    # The payment's amount (a refunded charge: the amount refunded), in minor units.
    amount_minor: int | None = None
    currency: str | None = None
    paid: bool = False
    # A refund event's refund; for a refunded charge, empty until the pipeline asked the
    # provider for the charge's refunds (``fetch_refunds``): such an event does not list them.
    refunds: tuple[ProviderRefund, ...] = ()
    dispute_id: str | None = None
    dispute_status: str | None = None
    dispute_reason: str | None = None
    # Whether the provider sent it in live mode (real money) or test mode; None: it does not say
    # (the dummy gateway, which has no modes).
    livemode: bool | None = None
    # Connect: the connected account the event happened on (None: the platform's own event),
    # the account an account event carries, and the transfer a transfer event is about.
    account: str | None = None
    connected_account: ProviderAccount | None = None
    transfer: ProviderTransfer | None = None


@dataclass(frozen=True)
class FetchedEvent:
    """One event read back from the provider's API rather than delivered to the webhook.

    ``payload`` is the event as a delivery of it would have been stored (the JSON object
    ``verify_event`` returns), so it enters the webhook pipeline after the signature step: it
    came over the authenticated API and carries no signature. ``parsed`` is that payload read by
    ``parse_event``, for deciding what to do before storing anything."""

    event_id: str
    parsed: ProviderEvent
    payload: dict[str, Any]


@dataclass(frozen=True)
class AccountCheck:
    """Whether the provider accepts marketlink's credentials, and in which mode. ``detail`` is
    for a person; it never holds the key."""

    ok: bool
    livemode: bool | None
    detail: str


@dataclass(frozen=True)
class AccountRequest:
    """A connected account for one vendor: Express Dashboard, the platform paying the
    provider's fees and liable for losses, able to receive transfers. ``recipient``: in another
    country than the platform's, so under the recipient service agreement (transfers only)."""

    vendor_id: str
    email: str
    country: str
    recipient: bool
    idempotency_key: str


@dataclass(frozen=True)
class AccountLink:
    """A single-use link to the provider's hosted onboarding, handed to the vendor."""

    url: str
    expires_at: datetime


@dataclass(frozen=True)
class TransferRequest:
    """One transfer of a vendor's share: from the charge that paid the order
    (``source_transaction``), grouped with it (``transfer_group``)."""

    amount_minor: int
    currency: str
    destination: str
    transfer_group: str
    source_transaction: str | None
    order_id: str
    idempotency_key: str


@dataclass(frozen=True)
class ReversalRequest:
    transfer_id: str
    amount_minor: int
    order_id: str
    idempotency_key: str


def transfer_group(order_id: object) -> str:
    """What groups an order's charge and its transfers at the provider."""
    return f"order_{order_id}"


class ConnectGateway(Protocol):
    """What a gateway must do to pay vendors (separate charges and transfers). Failures raise
    :class:`GatewayError`, ``answered`` when the provider refused (and would refuse the same
    request under the same key again)."""

    def platform_country(self) -> str:
        """The platform account's own country (ISO 3166 alpha-2)."""
        ...

    def create_account(self, request: AccountRequest) -> ProviderAccount: ...

    def fetch_account(self, account_id: str) -> ProviderAccount: ...

    def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> AccountLink: ...

    def create_login_link(self, account_id: str) -> str:
        """A link to the account's own dashboard (the provider's Express Dashboard)."""
        ...

    def payment_charge(self, payment_intent_id: str) -> str | None:
        """The charge that captured a payment (the ``source_transaction`` of its transfers)."""
        ...

    def create_transfer(self, request: TransferRequest) -> ProviderTransfer: ...

    def list_transfers(self, *, transfer_group: str) -> tuple[ProviderTransfer, ...]: ...

    def reverse_transfer(self, request: ReversalRequest) -> ProviderReversal: ...

    def verify_connect_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        """As :meth:`PaymentGateway.verify_event`, for the Connect endpoint's deliveries
        (signed with its own secret)."""
        ...


class PaymentGateway(ConnectGateway, Protocol):
    name: str

    def create_checkout(self, request: CheckoutRequest) -> CheckoutSession: ...

    def fetch_checkout(self, session_id: str) -> CheckoutSession: ...

    def expire_checkout(self, session_id: str) -> None: ...

    def refund(self, request: RefundRequest) -> ProviderRefund:
        """Ask for ``request.amount_minor`` of a captured payment back. The answer may be final
        or not: a pending refund settles later, through an event."""
        ...

    def fetch_refunds(self, payment_intent_id: str) -> tuple[ProviderRefund, ...]:
        """The refunds the provider holds for a payment as it reports them now, made by
        marketlink or elsewhere (the provider's dashboard), each with its own status: what a
        ``charge.refunded`` event, reconciliation and a refund's follow-up record."""
        ...

    def parse_event(self, event: dict[str, Any]) -> ProviderEvent:
        """The verified (or stored) event in marketlink's terms; :class:`InvalidInput` if it
        lacks what every event must have (an id and a type)."""
        ...

    def verify_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        """The event in ``payload`` if ``signature`` proves the provider sent it; else raises
        :class:`InvalidSignature`."""
        ...

    def list_events(
        self,
        *,
        since: datetime,
        kinds: Collection[EventKind] | None = None,
        undelivered_only: bool = False,
    ) -> Iterator[FetchedEvent]:
        """The provider's events created at or after ``since``, newest first, every page of
        them; only those of ``kinds`` if given, only those no webhook delivery of which was
        acknowledged if ``undelivered_only``. Raises :class:`EventsOutOfReach` when ``since`` is
        older than the provider keeps events, :class:`GatewayError` when it cannot be asked."""
        ...

    def kind_of(self, provider_type: str) -> EventKind:
        """What the provider's event type name means to marketlink (``OTHER`` if nothing), so
        an operator can name events the way the provider's dashboard and our log show them."""
        ...

    def check_credentials(self) -> AccountCheck:
        """One cheap call with the configured key. A refused key is an answer (``ok`` false);
        a provider that cannot be reached raises :class:`GatewayError`."""
        ...
