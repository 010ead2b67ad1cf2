from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from ninja import Field, Schema
from pydantic import AfterValidator, StringConstraints

from marketlink.envelope import PageQuery
from marketlink.orders import payment_hooks
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


class OrderOut(Schema):
    id: uuid.UUID
    customer_email: str
    vendor_name: str
    variant: OrderVariantOut
    total_amount: Decimal
    amount_refunded: Decimal = Field(
        description="What was given back of the order's payment (refunds that succeeded)."
    )
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
    def resolve_payment_url(order: RepairOrder, context: dict[str, Any]) -> str | None:
        return payment_hooks.get().payment_url(order, context["request"].build_absolute_uri)
