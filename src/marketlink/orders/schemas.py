from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AfterValidator, StringConstraints

from marketlink.accounts.models import Role
from marketlink.accounts.services import account_for_user
from marketlink.envelope import PageQuery
from marketlink.orders import payment_hooks, payout_hooks
from marketlink.orders.models import RepairOrder

StatusName = Literal[
    "pending", "paid", "processing", "completed", "failed", "cancelled", "refunded"
]


def _printable(key: str) -> str:
    # A control character could not travel back in a header and would be stored as sent.
    if not key or not key.isprintable():
        raise ValueError("Idempotency-Key must be 1 to 255 printable characters")
    return key


# The ``Idempotency-Key`` header: at most 255 characters, as its column holds.
IdempotencyKey = Annotated[str, StringConstraints(max_length=255), AfterValidator(_printable)]


class OrderIn(Schema):
    variant_id: uuid.UUID


class OrderQuery(PageQuery):
    status: StatusName | None = Field(None, description="Only orders in this status.")


class OrderVariantOut(Schema):
    id: uuid.UUID
    name: str
    price: Decimal
    stock: int = Field(description="The variant's stock right after this order's reservation.")


class PaymentStateOut(Schema):
    """What the Checkout redirect pages show: the order's status as marketlink knows it, and
    what the provider says about the checkout (which changes nothing by itself). ``order_id``,
    not ``id``: the seed's clients read that name here."""

    order_id: uuid.UUID
    status: StatusName
    provider_says_paid: bool


PayoutStatusName = Literal[
    "none", "held", "due", "released", "reversed", "debt", "failed", "cancelled"
]


class PayoutOut(Schema):
    """Where the vendor's share stands: ``held`` from booking until release (or until the order
    is cancelled or refunded unpaid), ``due`` (owed, not made yet), ``released``, ``reversed``,
    ``debt`` (a reversal was refused: the vendor owes it), ``failed`` (flagged for staff),
    ``cancelled`` (refunded or cancelled before release), ``none`` (placed with payouts off)."""

    status: PayoutStatusName
    amount: Decimal | None = Field(
        description="What is (or will be) transferred: the share less any debt it recovers."
    )
    transfer_id: str | None


def _for_the_seller(context: dict[str, Any]) -> bool:
    """Whether the caller is the order's vendor or staff (the customer sees no money split).
    Only they and the customer see an order at all, and a vendor never books: the role says."""
    request = context["request"]
    seller: bool | None = getattr(request, "_marketlink_seller", None)
    if seller is None:
        user = getattr(request, "auth", None)
        role = account_for_user(user).effective_role if user is not None else None
        seller = role in (Role.VENDOR, Role.ADMIN)
        request._marketlink_seller = seller
    return seller


class OrderOut(Schema):
    id: uuid.UUID
    customer_email: str
    vendor_name: str
    variant: OrderVariantOut
    total_amount: Decimal
    amount_refunded: Decimal = Field(
        description="What was given back of the order's payment (refunds that succeeded)."
    )
    platform_fee: Decimal | None = Field(
        description="The platform's fee, frozen at booking (vendor and staff only)."
    )
    vendor_share: Decimal | None = Field(
        description="What the vendor is paid: the total less the fee (vendor and staff only)."
    )
    payout: PayoutOut | None = Field(description="The vendor's payout (vendor and staff only).")
    currency: str
    status: StatusName
    payment_method: str
    payment_url: str | None
    expires_at: datetime
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_variant(order: RepairOrder) -> dict[str, object]:
        return {
            "id": order.variant_id,
            "name": order.variant_name,
            "price": order.unit_price,
            "stock": order.stock_after_reservation,
        }

    @staticmethod
    def resolve_platform_fee(order: RepairOrder, context: dict[str, Any]) -> Decimal | None:
        return order.platform_fee if _for_the_seller(context) else None

    @staticmethod
    def resolve_vendor_share(order: RepairOrder, context: dict[str, Any]) -> Decimal | None:
        return order.vendor_share if _for_the_seller(context) else None

    @staticmethod
    def resolve_payout(
        order: RepairOrder, context: dict[str, Any]
    ) -> payout_hooks.PayoutState | None:
        return payout_hooks.get().payout_of(order) if _for_the_seller(context) else None

    @staticmethod
    def resolve_payment_url(order: RepairOrder, context: dict[str, Any]) -> str | None:
        return payment_hooks.get().payment_url(order, context["request"].build_absolute_uri)
