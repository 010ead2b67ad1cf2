from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from ninja import Field, Schema


class OnboardingOut(Schema):
    url: str = Field(description="The provider's onboarding page: single use, open it soon.")
    expires_at: datetime


class AccountOut(Schema):
    id: str = Field(description="The connected account's id at the provider.")
    charges_enabled: bool
    payouts_enabled: bool
    details_submitted: bool
    requirements_due: list[str] = Field(description="What the provider still needs, each once.")
    ready: bool = Field(
        description="Can receive transfers (payouts enabled, transfers active): bookable."
    )

    @staticmethod
    def resolve_id(account: object) -> str:
        return str(getattr(account, "account_id", ""))


class BalanceOut(Schema):
    currency: str
    held: Decimal = Field(description="Shares of paid orders not released yet.")
    released: Decimal = Field(description="Transferred, less what was reversed.")
    reversed: Decimal = Field(description="Taken back in all.")
    debt: Decimal = Field(description="What the vendor owes (a refused or pending reversal).")


class PayoutsOut(Schema):
    account: AccountOut | None = Field(description="null before onboarding starts.")
    balance: BalanceOut


class EntryOut(Schema):
    id: uuid.UUID
    order_id: uuid.UUID | None
    kind: str
    amount: Decimal = Field(description="Signed, from the vendor's point of view.")
    currency: str
    provider_id: str
    created_at: datetime


class DashboardOut(Schema):
    url: str


class OnboardingPageOut(Schema):
    vendor_id: uuid.UUID
    ready: bool
