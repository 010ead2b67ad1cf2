from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from ninja import Schema
from pydantic import StringConstraints

from marketlink.schemas import PatchSchema

BusinessName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]


class VendorProfileIn(Schema):
    business_name: BusinessName
    address: Address = ""


class VendorProfilePatch(PatchSchema):
    business_name: BusinessName | None = None
    address: Address | None = None
    is_active: bool | None = None


class VendorProfileOut(Schema):
    id: uuid.UUID
    business_name: str
    address: str
    is_active: bool
    created_at: datetime
    updated_at: datetime
