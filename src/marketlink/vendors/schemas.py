from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from ninja import Schema
from pydantic import StringConstraints, field_validator
from pydantic.json_schema import SkipJsonSchema

from marketlink.accounts.models import Account
from marketlink.accounts.schemas import UserOut
from marketlink.schemas import PatchSchema
from marketlink.text import MultiLine, SingleLine
from marketlink.vendors.models import VendorProfile

BusinessName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), SingleLine
]
# A postal address is several lines on an envelope; it never goes into a header.
Address = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), MultiLine]


class VendorProfileIn(Schema):
    business_name: BusinessName
    address: Address = ""


class VendorProfilePatch(PatchSchema):
    business_name: BusinessName | None = None
    address: Address | None = None
    is_active: bool | None = None
    # Staff's, never the vendor's: taken only to be refused by name, since a silently ignored
    # ``"suspended": false`` would look to the vendor as if it had worked. Not published.
    suspended: SkipJsonSchema[bool | None] = None

    @field_validator("suspended", mode="before")
    @classmethod
    def _suspension_is_staff_only(cls, value: object) -> None:
        raise ValueError("suspended is set by the site's staff and cannot be changed here")


class VendorOut(Schema):
    """A vendor as the public sees it beside its services: the business, not the person (the
    seed showed its user's email here too; left out on purpose, see docs/decisions.md)."""

    id: uuid.UUID
    business_name: str
    address: str
    is_active: bool
    created_at: datetime
    updated_at: datetime


class VendorProfileOut(VendorOut):
    """The vendor's own profile, with its user as the seed answered it (``logged in as ...``),
    and whether staff suspended it (public listings never show a suspended vendor)."""

    user: UserOut
    suspended: bool

    @staticmethod
    def resolve_user(profile: VendorProfile) -> Account:
        # The vendor is the caller, so the profile has its user (only a deleted user leaves it
        # without), and authentication made sure its account exists.
        user: Any = profile.user
        account: Account = user.marketlink_account
        return account
