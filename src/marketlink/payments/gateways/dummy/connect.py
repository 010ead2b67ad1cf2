"""The dummy gateway pays vendors too: connected accounts it keeps itself, onboarded at once by
its own page (``connect_views``), and transfers and reversals recorded, one per idempotency key,
as Stripe makes them. No money moves; the ledger and the demo work as with Stripe.

The links it hands out are signed (``SECRET_KEY``), so only this site's own pages open them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from marketlink import conf
from marketlink.payments.gateways import signatures
from marketlink.payments.gateways.base import (
    AccountLink,
    AccountRequest,
    GatewayError,
    ProviderAccount,
    ProviderReversal,
    ProviderTransfer,
    ReversalRequest,
    TransferRequest,
)
from marketlink.payments.models import DummyAccount, DummyReversal, DummyTransfer

LINK_SALT = "marketlink.dummy-gateway.connect"
LINK_LIFETIME = timedelta(minutes=5)


def connect_webhook_secret() -> str:
    return hmac.new(
        settings.SECRET_KEY.encode(), b"marketlink.dummy-gateway.connect-webhooks", hashlib.sha256
    ).hexdigest()


def _refused(message: str, reason: str) -> GatewayError:
    return GatewayError(message, answered=True, reason=reason)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:24]


class DummyConnect:
    """The Connect half of ``DummyGateway``."""

    def platform_country(self) -> str:
        # The dummy has no country of its own: accounts are never cross-border on it.
        return conf.get().CONNECT_COUNTRY or "US"

    def create_account(self, request: AccountRequest) -> ProviderAccount:
        try:
            with transaction.atomic():
                account, _ = DummyAccount.objects.get_or_create(
                    idempotency_key=request.idempotency_key,
                    defaults={
                        "id": f"acct_dummy_{_digest(request.idempotency_key)}",
                        "vendor_ref": request.vendor_id,
                        "email": request.email,
                        "country": request.country,
                    },
                )
        except IntegrityError:  # made concurrently under the same key: the same account
            account = DummyAccount.objects.get(idempotency_key=request.idempotency_key)
        return account_state(account)

    def fetch_account(self, account_id: str) -> ProviderAccount:
        return account_state(_account(account_id))

    def create_account_link(
        self, account_id: str, *, refresh_url: str, return_url: str
    ) -> AccountLink:
        _account(account_id)
        token = signing.dumps(
            {"account": account_id, "refresh": refresh_url, "return": return_url}, salt=LINK_SALT
        )
        path = reverse("marketlink-dummy-onboarding", args=[token])
        return AccountLink(url=path, expires_at=timezone.now() + LINK_LIFETIME)

    def create_login_link(self, account_id: str) -> str:
        if not _account(account_id).onboarded:
            raise _refused(f"{account_id} has not finished onboarding.", "onboarding_incomplete")
        token = signing.dumps({"account": account_id}, salt=LINK_SALT)
        return reverse("marketlink-dummy-dashboard", args=[token])

    def payment_charge(self, payment_intent_id: str) -> str | None:
        return f"ch_dummy_{_digest(payment_intent_id)}"

    def create_transfer(self, request: TransferRequest) -> ProviderTransfer:
        done = DummyTransfer.objects.filter(idempotency_key=request.idempotency_key).first()
        if done is None:
            destination = _account(request.destination)
            if not destination.onboarded:
                raise _refused(
                    f"{destination.id} cannot receive transfers before it is onboarded.",
                    "insufficient_capabilities_for_transfer",
                )
            try:
                with transaction.atomic():
                    done = DummyTransfer.objects.create(
                        id=f"tr_dummy_{secrets.token_hex(12)}",
                        destination=destination,
                        amount_minor=request.amount_minor,
                        currency=request.currency,
                        transfer_group=request.transfer_group,
                        source_transaction=request.source_transaction or "",
                        order_ref=request.order_id,
                        idempotency_key=request.idempotency_key,
                    )
            except IntegrityError:
                done = DummyTransfer.objects.get(idempotency_key=request.idempotency_key)
        return transfer_state(done)

    def list_transfers(self, *, transfer_group: str) -> tuple[ProviderTransfer, ...]:
        found = DummyTransfer.objects.filter(transfer_group=transfer_group)
        return tuple(transfer_state(transfer) for transfer in found)

    def reverse_transfer(self, request: ReversalRequest) -> ProviderReversal:
        done = DummyReversal.objects.filter(idempotency_key=request.idempotency_key).first()
        if done is None:
            with transaction.atomic():
                transfer = (
                    DummyTransfer.objects.select_for_update().filter(pk=request.transfer_id).first()
                )
                if transfer is None:
                    raise _refused(f"No such transfer: {request.transfer_id}", "resource_missing")
                rest = transfer.amount_minor - transfer.amount_reversed_minor
                if request.amount_minor > rest:
                    raise _refused(
                        f"Only {rest} is left of {transfer.id} to reverse.", "amount_too_large"
                    )
                transfer.amount_reversed_minor += request.amount_minor
                transfer.save(update_fields=["amount_reversed_minor"])
                done = DummyReversal.objects.create(
                    id=f"trr_dummy_{secrets.token_hex(12)}",
                    transfer=transfer,
                    amount_minor=request.amount_minor,
                    idempotency_key=request.idempotency_key,
                )
        return ProviderReversal(
            id=done.id, transfer_id=done.transfer_id, amount_minor=done.amount_minor
        )

    def verify_connect_event(self, payload: bytes, signature: str) -> dict[str, Any]:
        return signatures.verified_event(payload, signature, connect_webhook_secret())


def _account(account_id: str) -> DummyAccount:
    account = DummyAccount.objects.filter(pk=account_id).first()
    if account is None:
        raise _refused(f"No such connected account: {account_id}", "no_access")
    return account


def account_state(account: DummyAccount) -> ProviderAccount:
    due = () if account.onboarded else ("external_account", "tos_acceptance.date")
    return ProviderAccount(
        id=account.id,
        country=account.country,
        charges_enabled=False,
        payouts_enabled=account.onboarded,
        details_submitted=account.onboarded,
        transfers_active=account.onboarded,
        requirements_due=due,
    )


def transfer_state(transfer: DummyTransfer) -> ProviderTransfer:
    return ProviderTransfer(
        id=transfer.id,
        amount_minor=transfer.amount_minor,
        currency=transfer.currency,
        destination=transfer.destination_id,
        transfer_group=transfer.transfer_group,
        order_ref=transfer.order_ref or None,
        amount_reversed_minor=transfer.amount_reversed_minor,
        reversals=tuple(
            ProviderReversal(id=r.id, transfer_id=transfer.id, amount_minor=r.amount_minor)
            for r in transfer.reversals.all()
        ),
    )


def account_event(account: DummyAccount) -> dict[str, Any]:
    """``account.updated`` in Stripe's event format, as the dummy's other events travel."""
    return {
        "id": f"evt_dummy_{secrets.token_hex(12)}",
        "object": "event",
        "type": "account.updated",
        "account": account.id,
        "created": int(timezone.now().timestamp()),
        "livemode": False,
        "data": {
            "object": {
                "id": account.id,
                "object": "account",
                "country": account.country,
                "charges_enabled": False,
                "payouts_enabled": account.onboarded,
                "details_submitted": account.onboarded,
                "capabilities": {"transfers": "active" if account.onboarded else "inactive"},
                "requirements": {"currently_due": [], "past_due": []},
                "metadata": {"vendor_id": account.vendor_ref},
            }
        },
    }


def signed_connect_event(event: dict[str, Any]) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    return payload, signatures.sign(payload, connect_webhook_secret())
