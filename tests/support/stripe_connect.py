"""Connect on the Stripe stand-in through the real SDK: the account marketlink creates, a paid
charge to transfer from, and the stand-in run as its own process (``python -m``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import stripe

from marketlink.testing.stripe_server import StripeStandIn

API_KEY = "sk_test_standin"
# The account marketlink asks for: Express Dashboard, the platform paying fees and losses.
EXPRESS: dict[str, Any] = {
    "controller": {
        "stripe_dashboard": {"type": "express"},
        "fees": {"payer": "application"},
        "losses": {"payments": "application"},
    },
    "capabilities": {"transfers": {"requested": True}},
    "country": "US",
    "email": "vendor@example.com",
    "metadata": {"vendor_id": "42"},
}


def make_client(standin: StripeStandIn, retries: int = 0) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY, base_addresses={"api": standin.api_base}, max_network_retries=retries
    )


def new_account(client: stripe.StripeClient, key: str | None = None, **overrides: Any) -> Any:
    """``POST /v1/accounts`` in marketlink's form, ``overrides`` replacing top-level params."""
    options = {"idempotency_key": key} if key else {}
    return client.v1.accounts.create(params={**EXPRESS, **overrides}, options=options)  # type: ignore[arg-type]


def paid_charge(
    standin: StripeStandIn, client: stripe.StripeClient, amount: int = 5000, currency: str = "usd"
) -> str:
    """A Checkout payment for order 7 (``transfer_group`` ``order_7``): the intent's
    ``latest_charge``."""
    price = {"currency": currency, "unit_amount": amount, "product_data": {"name": "Boat tour"}}
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [{"price_data": price, "quantity": 1}],  # type: ignore[list-item]
            "payment_intent_data": {"transfer_group": "order_7"},
        }
    )
    charge_id = client.v1.payment_intents.retrieve(standin.pay(session.id)["id"]).latest_charge
    assert isinstance(charge_id, str)
    return charge_id


@contextmanager
def standin_process(*flags: str) -> Iterator[str]:
    """The stand-in's command line on a free port with ``flags``: its API base. Ctrl-C (SIGINT)
    must then stop it cleanly."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "marketlink.testing.stripe_server", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().split()[3]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0  # generous: a loaded machine stops it slowly
