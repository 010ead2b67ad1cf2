"""A local stand-in for the slice of Stripe's HTTP API that marketlink's Stripe gateway uses.

Why it exists: Stripe's servers are unreachable from the machines our tests run on, and
localstripe, the usual fake, has no Checkout Sessions. Mocking the SDK would only test our
assumptions about Stripe; this server lets the real ``stripe`` SDK run unmodified over real
HTTP, so request encoding, error mapping, retries, idempotency keys and webhook signatures are
all exercised. It uses only the standard library and never imports ``stripe`` or Django.
``marketlink.testing.stripe_server`` re-exports it (and runs it: ``python -m``).

Pointing stripe-python 16 at it (plain ``http://`` works; the SDK does not insist on TLS)::

    standin = StripeStandIn(webhook_url="http://127.0.0.1:8000/api/webhooks/payment/").start()
    client = stripe.StripeClient("sk_test_standin", base_addresses={"api": standin.api_base})
    session = client.v1.checkout.sessions.create(params={...})

or, for code that uses the module-level configuration and resource classes::

    stripe.api_key = "sk_test_standin"
    stripe.api_base = standin.api_base
    stripe.checkout.Session.create(...)

The SDK retries 5xx answers and connection errors (``max_network_retries``, 2 by default for both
styles) with the same ``Idempotency-Key``; pass ``max_network_retries=0`` when a test wants the
first failure to surface.

What is modelled, one module each: Checkout Sessions in ``mode=payment`` with ``price_data``
line items (``sessions``) and the hosted checkout page at ``session.url`` (``checkout_page``),
the payment intents and charges that paying them creates (``intents``), refunds and disputes
(``refunds``), Connect's Express accounts with Account Links and login links (``accounts``,
``account_shapes``) and their hosted onboarding and dashboard pages (``connect_pages``),
transfers and their reversals (``transfers``), events and the Events API (``events``), webhook
delivery (``delivery``), ``GET /v1/balance`` and ``GET /v1/account`` (``account``), list
pagination (``lists``), Stripe's idempotency-key rules (``idempotency``), which part answers
which path (``routes``), and the HTTP layer with Bearer authentication (``server``). Parameters
outside that slice are rejected as unknown, as Stripe rejects misspelt ones, so the gateway
cannot silently rely on something the stand-in ignores.

Levers (attributes of ``StripeStandIn`` unless called):

- faults: ``latency`` (seconds before each API answer), ``fail_next(n, status=500)``, ``down``
  (every call a 503); ``stop()`` makes the port refuse connections, ``start()`` reopens it;
- the customer and the bank: ``pay()`` (``async_payment=True`` for bank debits, then
  ``succeed_async()`` / ``fail_async()``), ``fail()`` (a declined card), ``expire()``,
  ``refund()`` (a refund made in the Dashboard), ``refund_status`` and ``settle_refund()``,
  ``dispute()`` and ``close_dispute()``;
- Connect (``connect_levers``): ``finish_onboarding()``, ``set_payouts_enabled()``,
  ``set_capability()``, ``deauthorize()``, ``pay_out()`` (a connected account's balance leaves
  for its bank, so a reversal is refused with ``balance_insufficient``), ``fail_transfers()`` and
  ``fail_reversals()``, ``platform_country``; views ``accounts``, ``transfers``,
  ``account_balance()`` and ``connect_deliveries``;
- ``drop_deliveries``: while true, new events are kept and listed by the Events API, but their
  webhook deliveries are lost (recorded in ``deliveries`` as ``dropped``, status 0), so
  ``delivery_success=false`` lists them, as after an endpoint outage;
- ``clock_offset``: seconds added to the stand-in's clock (negative for the past): every
  ``created`` it writes, the ``expires_at`` checks and the Events API's 30-day window follow it,
  so a test makes events 40 days old with ``clock_offset = -40 * 86400``, then sets it back.

The Events API: ``GET /v1/events`` lists the events of the last 30 days (on the stand-in's clock)
newest first, filtered by ``created`` (a time, or ``created[gt|gte|lt|lte]``), ``type`` (``*``
wildcards) or ``types[]`` (not both), and ``delivery_success`` (whether a webhook delivery of
the event was answered 2xx); ``limit`` 1..100 (default 10), ``starting_after`` or
``ending_before``, ``has_more``. ``GET /v1/events/{id}`` answers within the same 30 days.
``GET /v1/refunds`` lists refunds the same way, by ``payment_intent`` or ``charge``; a charge's
``refunds``, expanded, holds only its 10 newest (``has_more``), as Stripe's does.
``GET /v1/balance`` (with ``livemode``: false for ``sk_test_``/``rk_test_`` keys) and
``GET /v1/account`` are the cheap calls that check a key; a wrong key is a 401 in Stripe's shape.

Webhooks: events of a connected account (with an ``account``) go to ``connect_webhook_url`` signed
with ``connect_webhook_secret``, the others to ``webhook_url`` signed with ``webhook_secret``; the
Events API lists a connected account's events only to a request whose ``Stripe-Account`` header
names it. Events are delivered synchronously, in emission order, by the thread that caused them (a
control method, or the server thread answering an API call), after the state lock has been released
so a receiver may call the API back. When ``pay()`` returns, the receiver has already answered each
of its events, so tests need no ``flush()``. Every attempt is recorded in ``deliveries``
(``connect_deliveries`` for the Connect endpoint; status 0 when the receiver could not be reached;
redirects count as failures, as they do for Stripe). Stripe does not guarantee event order; use
``deliver()`` or ``redeliver()`` to replay events in any order (made even while ``drop_deliveries``
is set). With ``auto_deliver=False`` events are only stored (never delivered, so never
acknowledged).

Run by hand (blocks until Ctrl-C)::

    python -m marketlink.testing.stripe_server --port 12111 \\
        --webhook-url http://127.0.0.1:8000/api/webhooks/payment/ --webhook-secret whsec_x \\
        --connect-webhook-url http://127.0.0.1:8000/api/webhooks/connect/
"""

from marketlink.testing.stripe.common import API_VERSION, RecordedRequest, StandInError
from marketlink.testing.stripe.delivery import Delivery
from marketlink.testing.stripe.standin import StripeStandIn

__all__ = ["API_VERSION", "Delivery", "RecordedRequest", "StandInError", "StripeStandIn"]
