"""Stripe Connect for the Stripe gateway: Express accounts (controller properties), Account
Links, login links, and transfers with their reversals (separate charges and transfers).

Kept beside ``stripe.py``, the two being the only modules that import the SDK or read Stripe's
JSON: :class:`StripeConnect` is mixed into ``StripeGateway``, and the readers of Connect objects
below serve its event parser.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from marketlink.payments.gateways.base import (
    AccountLink,
    AccountRequest,
    ProviderAccount,
    ProviderReversal,
    ProviderTransfer,
    ReversalRequest,
    TransferRequest,
)

# The account marketlink makes: Stripe's Express Dashboard for the vendor, the platform paying
# Stripe's fees and liable for the account's losses (separate charges and transfers).
CONTROLLER = {
    "stripe_dashboard": {"type": "express"},
    "fees": {"payer": "application"},
    "losses": {"payments": "application"},
}


class StripeConnect:
    """The Connect half of ``StripeGateway`` (which provides ``_call``)."""

    _call: Callable[[str, Any], Any]

    def platform_country(self) -> str:
        account = self._call(
            "read the platform account", lambda client: client.v1.accounts.retrieve_current()
        )
        return str(account.country or "").upper()

    def create_account(self, request: AccountRequest) -> ProviderAccount:
        params: dict[str, Any] = {
            "controller": CONTROLLER,
            "capabilities": {"transfers": {"requested": True}},
            "country": request.country,
            "email": request.email,
            "metadata": {"vendor_id": request.vendor_id},
        }
        if request.recipient:
            # Across borders Stripe moves funds only to accounts under the recipient agreement.
            params["tos_acceptance"] = {"service_agreement": "recipient"}
        account = self._call(
            "create a connected account",
            lambda client: client.v1.accounts.create(
                params=params, options={"idempotency_key": request.idempotency_key}
            ),
        )
        return read_account(account.to_dict())

    def fetch_account(self, account_id: str) -> ProviderAccount:
        account = self._call(
            "read a connected account", lambda client: client.v1.accounts.retrieve(account_id)
        )
        return read_account(account.to_dict())

    def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> AccountLink:
        params = {
            "account": account_id,
            "type": "account_onboarding",
            "refresh_url": refresh_url,
            "return_url": return_url,
        }
        link = self._call(
            "create an onboarding link",
            lambda client: client.v1.account_links.create(params=params),
        )
        return AccountLink(url=link.url, expires_at=datetime.fromtimestamp(link.expires_at, UTC))

    def create_login_link(self, account_id: str) -> str:
        link = self._call(
            "create a dashboard link",
            lambda client: client.v1.accounts.login_links.create(account_id),
        )
        return str(link.url)

    def payment_charge(self, payment_intent_id: str) -> str | None:
        intent = self._call(
            "read a payment", lambda client: client.v1.payment_intents.retrieve(payment_intent_id)
        )
        charge = intent.latest_charge
        return charge if isinstance(charge, str) or charge is None else str(charge.id)

    def create_transfer(self, request: TransferRequest) -> ProviderTransfer:
        params: dict[str, Any] = {
            "amount": request.amount_minor,
            "currency": request.currency,
            "destination": request.destination,
            "transfer_group": request.transfer_group,
            "metadata": {"order_id": request.order_id},
        }
        if request.source_transaction:
            params["source_transaction"] = request.source_transaction
        transfer = self._call(
            "transfer a vendor's share",
            lambda client: client.v1.transfers.create(
                params=params, options={"idempotency_key": request.idempotency_key}
            ),
        )
        return read_transfer(transfer.to_dict())

    def list_transfers(self, *, transfer_group: str) -> tuple[ProviderTransfer, ...]:
        page = self._call(
            "list transfers",
            lambda client: client.v1.transfers.list(
                params={"transfer_group": transfer_group, "limit": 100}
            ),
        )
        return tuple(read_transfer(transfer.to_dict()) for transfer in page.data)

    def reverse_transfer(self, request: ReversalRequest) -> ProviderReversal:
        reversal = self._call(
            "reverse a transfer",
            lambda client: client.v1.transfers.reversals.create(
                request.transfer_id,
                params={"amount": request.amount_minor, "metadata": {"order_id": request.order_id}},
                options={"idempotency_key": request.idempotency_key},
            ),
        )
        return read_reversal(reversal.to_dict())


# --- Stripe's Connect objects, in marketlink's terms -------------------------------------------


def read_account(obj: dict[str, Any]) -> ProviderAccount:
    requirements = _dict(obj.get("requirements"))
    # A new account lists its fields both as currently due and as past due: each once.
    due = [*(requirements.get("currently_due") or ()), *(requirements.get("past_due") or ())]
    capabilities = _dict(obj.get("capabilities"))
    return ProviderAccount(
        id=str(obj.get("id") or ""),
        country=_text(obj.get("country")),
        charges_enabled=obj.get("charges_enabled") is True,
        payouts_enabled=obj.get("payouts_enabled") is True,
        details_submitted=obj.get("details_submitted") is True,
        transfers_active=capabilities.get("transfers") == "active",
        requirements_due=tuple(dict.fromkeys(str(item) for item in due)),
    )


def read_transfer(obj: dict[str, Any]) -> ProviderTransfer:
    metadata = _dict(obj.get("metadata"))
    reversals = _dict(obj.get("reversals")).get("data")
    return ProviderTransfer(
        id=str(obj.get("id") or ""),
        amount_minor=_int(obj.get("amount")),
        currency=str(obj.get("currency") or ""),
        destination=_destination(obj.get("destination")),
        transfer_group=_text(obj.get("transfer_group")),
        order_ref=_text(metadata.get("order_id")),
        amount_reversed_minor=_int(obj.get("amount_reversed")),
        reversals=tuple(read_reversal(r) for r in reversals or () if isinstance(r, dict)),
    )


def read_reversal(obj: dict[str, Any]) -> ProviderReversal:
    transfer = obj.get("transfer")
    transfer_id = transfer.get("id") if isinstance(transfer, dict) else transfer
    return ProviderReversal(
        id=str(obj.get("id") or ""),
        transfer_id=str(transfer_id or ""),
        amount_minor=_int(obj.get("amount")),
    )


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _destination(value: Any) -> str:
    return str(value.get("id") if isinstance(value, dict) else value or "")


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
