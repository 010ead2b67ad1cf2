"""Transfers to connected accounts and their reversals: the "transfer" half of separate charges
and transfers.

The rules Stripe applies and the stand-in checks:

- the destination must be a connected account the platform can reach, whose ``transfers``
  capability is ``active`` (else 400 ``insufficient_capabilities_for_transfer``); an account
  in another country must be under the ``recipient`` service agreement, except between
  countries of the European Economic Area;
- without ``source_transaction`` the platform's available balance must cover the amount
  (else 400 ``balance_insufficient``); with it, the charge must be the platform's, succeeded,
  in the transfer's currency, and the transfers from one charge cannot add up to more than it;
- a reversal takes back the rest of the transfer unless ``amount`` says less, never more than
  the rest, and only if the connected account's balance covers it (else 400
  ``balance_insufficient``; ``pay_out()`` empties that balance, as the account's payouts to
  its bank do).

``transfer.created`` and ``transfer.reversed`` (also for a partial reversal) are events of the
platform, delivered to its own endpoint. ``fail_next()`` makes the next transfers (or reversals)
fail once they have begun executing: a 400 or 500 is then saved under the idempotency key and
replayed, a 503 stands for an outage and is not."""

import copy
from collections import defaultdict

from marketlink.testing.stripe import countries, lists
from marketlink.testing.stripe.account import connected_funds, platform_funds
from marketlink.testing.stripe.accounts import ConnectedAccounts
from marketlink.testing.stripe.common import JSONObject, StandInError, Store, new_id
from marketlink.testing.stripe.events import Events
from marketlink.testing.stripe.params import (
    as_currency,
    as_int,
    as_str,
    metadata,
    only,
    optional_str,
    required,
)

_CREATE_PARAMS = {
    "amount",
    "currency",
    "destination",
    "description",
    "metadata",
    "source_transaction",
    "transfer_group",
    "expand",
}
_OPERATIONS = ("transfer", "reversal")


class Transfers:
    def __init__(self, store: Store, events: Events, accounts: ConnectedAccounts) -> None:
        self._store = store
        self._events = events
        self._accounts = accounts
        self._failures: dict[str, list[StandInError]] = {operation: [] for operation in _OPERATIONS}
        self._paid_out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def create(self, params: JSONObject) -> JSONObject:
        """``POST /v1/transfers``."""
        only(params, _CREATE_PARAMS)
        amount = as_int(required(params, "amount"), "amount", minimum=1)
        currency = as_currency(required(params, "currency"), "currency")
        destination = as_str(required(params, "destination"), "destination")
        source = optional_str(params, "source_transaction")
        meta = metadata(params, "metadata")
        group, description = (
            optional_str(params, "transfer_group"),
            optional_str(params, "description"),
        )
        self._injected("transfer")
        self._check_destination(destination)
        if source is not None:
            self._check_source(source, amount, currency)
        elif amount > platform_funds(self._store).get(currency, 0):
            raise StandInError(
                400,
                "You have insufficient funds in your Stripe account. (The stand-in's available "
                "balance is what captured charges left after refunds and transfers; a transfer "
                "with a source_transaction is funded from that charge instead.)",
                code="balance_insufficient",
            )
        transfer_id = new_id("tr")
        transfer = self._store.add(
            {
                "id": transfer_id,
                "object": "transfer",
                "amount": amount,
                "amount_reversed": 0,
                "balance_transaction": new_id("txn"),
                "created": self._store.now(),
                "currency": currency,
                "description": description,
                "destination": destination,
                "destination_payment": new_id("py"),
                "livemode": False,
                "metadata": meta,
                "reversals": {
                    "object": "list",
                    "data": [],
                    "has_more": False,
                    "total_count": 0,
                    "url": f"/v1/transfers/{transfer_id}/reversals",
                },
                "reversed": False,
                "source_transaction": source,
                "source_type": "card",
                "transfer_group": group,
            }
        )
        self._events.emit("transfer.created", transfer)
        return transfer

    def retrieve(self, transfer_id: str) -> JSONObject:
        return self._store.get("transfer", transfer_id, "id")

    def page(self, params: JSONObject) -> JSONObject:
        """``GET /v1/transfers``, filtered by ``destination`` and ``transfer_group``."""
        only(params, {"destination", "transfer_group", *lists.PAGE_PARAMS})
        destination = optional_str(params, "destination")
        group = optional_str(params, "transfer_group")
        return lists.page(
            lists.newest_first(self._store.copies("transfer").values()),
            params,
            url="/v1/transfers",
            object_type="transfer",
            keep=lambda transfer: (
                destination in (None, transfer["destination"])
                and group in (None, transfer["transfer_group"])
            ),
        )

    def reversals(self, transfer_id: str, params: JSONObject) -> JSONObject:
        """``GET /v1/transfers/{id}/reversals``."""
        only(params, lists.PAGE_PARAMS)
        transfer = self.retrieve(transfer_id)
        return lists.page(
            transfer["reversals"]["data"],
            params,
            url=transfer["reversals"]["url"],
            object_type="transfer_reversal",
        )

    def reverse(self, transfer_id: str, params: JSONObject) -> JSONObject:
        """``POST /v1/transfers/{id}/reversals``: the rest of the transfer, or ``amount`` of it."""
        only(params, {"amount", "description", "metadata", "expand"})
        wanted = as_int(params["amount"], "amount", minimum=1) if "amount" in params else None
        meta = metadata(params, "metadata")
        transfer = self._store.get("transfer", transfer_id, "id")
        self._injected("reversal")
        rest = transfer["amount"] - transfer["amount_reversed"]
        if rest == 0:
            raise StandInError(400, f"Transfer {transfer_id} has already been fully reversed.")
        amount = rest if wanted is None else wanted
        if amount > rest:
            raise StandInError(
                400,
                f"You have attempted to reverse {amount}, more than the {rest} that remains of "
                f"transfer {transfer_id}.",
                param="amount",
            )
        destination, currency = transfer["destination"], transfer["currency"]
        if amount > self.account_funds(destination).get(currency, 0):
            raise StandInError(
                400,
                f"Insufficient funds in the connected account {destination} to reverse "
                f"{amount} {currency} of transfer {transfer_id}.",
                code="balance_insufficient",
            )
        reversal = self._store.add(
            {
                "id": new_id("trr"),
                "object": "transfer_reversal",
                "amount": amount,
                "balance_transaction": new_id("txn"),
                "created": self._store.now(),
                "currency": currency,
                "destination_payment_refund": new_id("pyr"),
                "metadata": meta,
                "source_refund": None,
                "transfer": transfer_id,
            }
        )
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, copy.deepcopy(reversal))
        transfer["reversals"]["total_count"] += 1
        self._events.emit("transfer.reversed", transfer)
        return reversal

    # -- balances and levers ---------------------------------------------------------------

    def account_funds(self, account_id: str) -> dict[str, int]:
        return connected_funds(self._store, account_id, self._paid_out[account_id])

    def pay_out(self, account_id: str, amount: int | None, currency: str | None) -> None:
        """The connected account's money leaves for its bank: ``amount`` (all of it by
        default) of ``currency`` (the account's default currency by default)."""
        account = self._accounts.retrieve(account_id)
        currency = currency or account["default_currency"]
        available = self.account_funds(account_id).get(currency, 0)
        if amount is not None and amount > available:
            raise ValueError(f"{account_id} has only {available} {currency} to pay out")
        self._paid_out[account_id][currency] += available if amount is None else amount

    def fail_next(
        self, operation: str, n: int, status: int, code: str | None, message: str | None
    ) -> None:
        self._failures[operation] = [
            StandInError(
                status,
                message or f"Injected failure of the {operation} (fail_{operation}s).",
                error_type="api_error" if status >= 500 else "invalid_request_error",
                code=code,
                saved=status != 503,
            )
            for _ in range(n)
        ]

    def _injected(self, operation: str) -> None:
        if self._failures[operation]:
            raise self._failures[operation].pop(0)

    def _check_destination(self, destination: str) -> None:
        try:
            account = self._accounts.retrieve(destination, "destination")
        except StandInError:
            raise StandInError(
                400,
                f"No such destination: '{destination}'",
                param="destination",
                code="resource_missing",
            ) from None
        if account["capabilities"].get("transfers") != "active":
            raise StandInError(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                param="destination",
                code="insufficient_capabilities_for_transfer",
            )
        agreement = account["tos_acceptance"]["service_agreement"]
        platform_country = self._accounts.platform_country
        if agreement != "recipient" and countries.transfers_need_recipient(
            platform_country, account["country"]
        ):
            raise StandInError(
                400,
                f"Funds can't be sent to accounts located in {account['country']} from a "
                f"platform in {platform_country} unless the account is under the `recipient` "
                "service agreement.",
                param="destination",
                code="transfers_not_allowed",
            )

    def _check_source(self, source: str, amount: int, currency: str) -> None:
        charge = self._store.objects.get(source)
        if charge is None or charge["object"] != "charge":
            raise StandInError(
                400,
                f"No such charge: '{source}'",
                param="source_transaction",
                code="resource_missing",
            )
        if charge["status"] != "succeeded":
            raise StandInError(
                400,
                f"The source_transaction {source} has not succeeded.",
                param="source_transaction",
            )
        if charge["currency"] != currency:
            raise StandInError(
                400,
                f"The currency of source_transaction's balance transaction "
                f"({charge['currency']}) must be the same as the transfer currency ({currency}).",
                param="currency",
            )
        sent = sum(
            transfer["amount"]
            for transfer in self._store.objects.values()
            if transfer["object"] == "transfer" and transfer["source_transaction"] == source
        )
        if sent + amount > charge["amount"]:
            raise StandInError(
                400,
                f"The transfer amount ({amount}) exceeds what is left of source_transaction "
                f"{source} ({charge['amount'] - sent} of {charge['amount']}): the transfers from "
                "a charge cannot add up to more than its amount.",
                param="amount",
            )
