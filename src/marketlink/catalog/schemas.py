from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from ninja import Field, Schema
from pydantic import AfterValidator, StringConstraints, model_validator

from marketlink.catalog.models import MAX_STOCK, ServiceVariant
from marketlink.envelope import PageQuery
from marketlink.schemas import PatchSchema
from marketlink.text import MultiLine, SingleLine
from marketlink.vendors.schemas import VendorOut

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=5000), MultiLine]
# Quantized so a created or edited variant shows "29.90", as it is stored, not "29.9" or "1E+2".
Price = Annotated[
    Decimal,
    Field(gt=0, max_digits=10, decimal_places=2),
    AfterValidator(lambda price: price.quantize(Decimal("0.01"))),
]
Minutes = Annotated[int, Field(gt=0, le=60 * 24 * 365)]
Stock = Annotated[int, Field(ge=0, le=MAX_STOCK)]


class ServiceIn(Schema):
    name: Name
    description: Description = ""


class ServicePatch(PatchSchema):
    name: Name | None = None
    description: Description | None = None


class VariantIn(Schema):
    name: Name
    price: Price
    estimated_minutes: Minutes
    # Required, as in the seed: a default of 0 published variants nobody could book.
    stock: Stock


class VariantPatch(PatchSchema):
    name: Name | None = None
    price: Price | None = None
    estimated_minutes: Minutes | None = None
    stock: Stock | None = Field(None, description="Units bookable now (replaces the count).")
    stock_adjustment: Annotated[int, Field(ge=-MAX_STOCK, le=MAX_STOCK)] | None = Field(
        None,
        description="Units to add (or, negative, remove) relative to the current count: safe "
        "while bookings are under way, unlike setting `stock`.",
    )

    @model_validator(mode="after")
    def _one_way_to_change_stock(self) -> Self:
        if self.stock is not None and self.stock_adjustment is not None:
            raise ValueError("send either stock or stock_adjustment, not both")
        return self


class VariantOut(Schema):
    id: uuid.UUID
    service: uuid.UUID
    name: str
    price: Decimal
    estimated_minutes: int
    stock: int
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_service(variant: ServiceVariant) -> uuid.UUID:
        return variant.service_id


class AvailabilityOut(VariantOut):
    is_available: bool
    available_stock: int


class ServiceOut(Schema):
    id: uuid.UUID
    vendor: VendorOut
    name: str
    description: str
    created_at: datetime
    updated_at: datetime
    variants: list[VariantOut]


class ServiceQuery(PageQuery):
    search: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), SingleLine] | None
    ) = None
    vendor: uuid.UUID | None = Field(None, description="Only this vendor profile's services.")
