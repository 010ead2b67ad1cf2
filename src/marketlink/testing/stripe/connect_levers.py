"""The Connect half of ``StripeStandIn``'s levers and views: connected accounts, transfers, and
the Connect webhook endpoint their events go to."""

import copy
from contextlib import AbstractContextManager

from marketlink.testing.stripe.accounts import ConnectedAccounts
from marketlink.testing.stripe.common import JSONObject, Store
from marketlink.testing.stripe.delivery import Delivery, WebhookDelivery
from marketlink.testing.stripe.transfers import Transfers


class ConnectLevers:
    """Mixed into ``StripeStandIn``: what a test does to connected accounts, and sees of them.

    Events of a connected account (``account.updated``, ``capability.updated``,
    ``account.application.deauthorized``) carry its id as ``account`` and go to
    ``connect_webhook_url``, signed with ``connect_webhook_secret``; ``transfer.created`` and
    ``transfer.reversed`` are the platform's and go to ``webhook_url``."""

    _store: Store
    _accounts: ConnectedAccounts
    _transfers: Transfers
    _connect_delivery: WebhookDelivery

    def _transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    # -- configuration ---------------------------------------------------------------------

    @property
    def connect_webhook_url(self) -> str | None:
        return self._connect_delivery.url

    @connect_webhook_url.setter
    def connect_webhook_url(self, value: str | None) -> None:
        self._connect_delivery.url = value

    @property
    def connect_webhook_secret(self) -> str:
        return self._connect_delivery.secret

    @connect_webhook_secret.setter
    def connect_webhook_secret(self, value: str) -> None:
        self._connect_delivery.secret = value

    @property
    def platform_country(self) -> str:
        """The platform's own country (``GET /v1/account``), ``"US"`` unless set: a new
        account's default country, and what makes a transfer cross-border."""
        return self._accounts.platform_country

    @platform_country.setter
    def platform_country(self, value: str) -> None:
        self._accounts.platform_country = value

    # -- inspection ------------------------------------------------------------------------

    @property
    def accounts(self) -> dict[str, JSONObject]:
        """Connected accounts by id, as ``GET /v1/accounts/{id}`` would show them."""
        return self._store.copies("account")

    @property
    def transfers(self) -> dict[str, JSONObject]:
        """Transfers by id, each with its ``reversals``."""
        return self._store.copies("transfer")

    @property
    def connect_deliveries(self) -> list[Delivery]:
        """Every delivery attempt to the Connect endpoint (``deliveries``: the platform's)."""
        return self._connect_delivery.attempts

    def account_balance(self, account_id: str) -> dict[str, int]:
        """A connected account's available funds per currency (transfers in, net of
        reversals, less what ``pay_out()`` sent to its bank)."""
        with self._store.lock:
            return dict(self._transfers.account_funds(account_id))

    # -- what happens to connected accounts ------------------------------------------------

    def finish_onboarding(self, account_id: str) -> JSONObject:
        """The account holder completes Stripe's onboarding (as the hosted page's "Finish"
        does): ``details_submitted`` and ``payouts_enabled`` turn true, each requested
        capability ``active`` (``charges_enabled`` follows ``card_payments``), nothing is due;
        ``capability.updated`` and ``account.updated`` go to the Connect endpoint. A second
        call changes nothing and tells nothing."""
        with self._transaction():
            return copy.deepcopy(self._accounts.finish_onboarding(account_id))

    def set_payouts_enabled(self, account_id: str, enabled: bool) -> JSONObject:
        """A bank problem (``False``: ``external_account`` due, payouts off) and its fix
        (``True``), on an onboarded account; ``account.updated`` tells it."""
        with self._transaction():
            return copy.deepcopy(self._accounts.set_payouts_enabled(account_id, enabled))

    def set_capability(self, account_id: str, capability: str, status: str) -> JSONObject:
        """Stripe changes a capability (``transfers`` or ``card_payments``) to ``active``,
        ``inactive`` or ``pending``: ``capability.updated`` and ``account.updated`` tell it."""
        with self._transaction():
            return copy.deepcopy(self._accounts.set_capability(account_id, capability, status))

    def deauthorize(self, account_id: str) -> JSONObject:
        """The account disconnects from the platform: ``account.application.deauthorized``
        goes to the Connect endpoint, and the platform's requests about the account (or on
        its behalf) answer 403 from then on. Returns the account as it was."""
        with self._transaction():
            return copy.deepcopy(self._accounts.deauthorize(account_id))

    def pay_out(
        self, account_id: str, amount: int | None = None, *, currency: str | None = None
    ) -> dict[str, int]:
        """The connected account's balance leaves for its bank (all of it by default, in its
        default currency unless ``currency``), so a later reversal finds too little and is
        refused with ``balance_insufficient``. Returns the balance left."""
        with self._transaction():
            self._transfers.pay_out(account_id, amount, currency)
            return dict(self._transfers.account_funds(account_id))

    def fail_transfers(
        self, n: int, *, status: int = 400, code: str | None = None, message: str | None = None
    ) -> None:
        """The next ``n`` transfers are refused once they have begun executing: a 400 (with
        ``code``) or a 500 is saved under the request's idempotency key and replayed to a
        retry with that key; a 503 stands for an outage and is not (a retry runs anew)."""
        with self._store.lock:
            self._transfers.fail_next("transfer", n, status, code, message)

    def fail_reversals(
        self, n: int, *, status: int = 400, code: str | None = None, message: str | None = None
    ) -> None:
        """As ``fail_transfers()``, for the next ``n`` transfer reversals."""
        with self._store.lock:
            self._transfers.fail_next("reversal", n, status, code, message)
