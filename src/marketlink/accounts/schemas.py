from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from ninja import Field, Schema
from pydantic import AfterValidator, StringConstraints, model_validator

from marketlink.accounts.models import Account
from marketlink.schemas import PatchSchema
from marketlink.text import SingleLine


def _valid_email(value: str) -> str:
    try:
        validate_email(value)
    except DjangoValidationError:
        raise ValueError("email is not a valid email address") from None
    return value.lower()


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    SingleLine,  # before the email check: Django's lets U+2028 through in the domain
    AfterValidator(_valid_email),
    Field(json_schema_extra={"format": "email"}),
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, max_length=150), SingleLine]


class RegisterIn(Schema):
    email: Email
    password: Password
    password2: Password | None = None
    first_name: PersonName = ""
    last_name: PersonName = ""
    role: Literal["CUSTOMER", "VENDOR", "ADMIN"] = Field(
        "CUSTOMER", description="ADMIN is refused: staff are made by staff."
    )

    @model_validator(mode="after")
    def _passwords_match(self) -> Self:
        if self.password2 is not None and self.password2 != self.password:
            raise ValueError("password2 does not match password")
        return self


class LoginIn(Schema):
    email: Email
    password: Password


class LogoutIn(Schema):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class RefreshIn(Schema):
    refresh: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class ProfilePatch(PatchSchema):
    first_name: PersonName | None = None
    last_name: PersonName | None = None


class UserOut(Schema):
    id: uuid.UUID
    email: str
    first_name: str
    last_name: str
    role: Literal["CUSTOMER", "VENDOR", "ADMIN"]
    date_joined: datetime

    @staticmethod
    def resolve_first_name(account: Account) -> str:
        return getattr(account.user, "first_name", "") or ""

    @staticmethod
    def resolve_last_name(account: Account) -> str:
        return getattr(account.user, "last_name", "") or ""

    @staticmethod
    def resolve_role(account: Account) -> str:
        return account.effective_role

    @staticmethod
    def resolve_date_joined(account: Account) -> datetime:
        return getattr(account.user, "date_joined", None) or account.created_at


class TokensOut(Schema):
    access: str
    refresh: str


class AuthOut(Schema):
    user: UserOut
    tokens: TokensOut
