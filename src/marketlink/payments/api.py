"""``/webhooks/payment/`` (the provider's signed events), ``/payments/pay/{token}/`` (the
stable payment link customers are given), and the payment operations on an order,
``/orders/{id}/checkout/`` and ``/orders/{id}/refund/`` (mounted beside the orders router, under
the same prefix: each path is answered by one router only)."""

from __future__ import annotations

import uuid
from typing import Any

from django.http import HttpRequest, HttpResponseRedirect
from ninja import Router

from marketlink.accounts.auth import AuthedRequest, customers, vendors_and_admins
from marketlink.envelope import Envelope, ok, refuse_oversized_body, responses
from marketlink.exceptions import InvalidInput
from marketlink.orders import selectors as order_selectors
from marketlink.orders.models import OrderStatus
from marketlink.orders.schemas import OrderOut
from marketlink.payments import checkout, refunds, webhooks
from marketlink.payments.schemas import WebhookOut
from marketlink.payments.selectors import order_for_link
from marketlink.throttles import PUBLIC_PAGES, SettingThrottle

webhook_router = Router(tags=["payments"])
orders_router = Router(tags=["orders"])
link_router = Router(tags=["payments"])


@webhook_router.post(
    "/payment/",
    response=responses(200, Envelope[WebhookOut], 413, 503),
    summary="Payment provider events (Stripe-signed)",
)
def payment_webhook(request: HttpRequest) -> dict[str, Any]:
    """Verify the ``Stripe-Signature``, keep the event, process it once. 400: not a genuine
    event; 503: a transient failure, the provider should retry; 200 otherwise, also for events
    that need staff attention (they are flagged, and retried when delivered again)."""
    return _received(request, connect=False)


@webhook_router.post(
    "/connect/",
    response=responses(200, Envelope[WebhookOut], 413, 503),
    summary="Connected accounts' events (Stripe Connect, signed with its own secret)",
)
def connect_webhook(request: HttpRequest) -> dict[str, Any]:
    """The Connect endpoint: connected accounts' events (an account onboarded, its payouts
    disabled), signed with ``STRIPE_CONNECT_WEBHOOK_SECRET``; the same pipeline and answers as
    the payment endpoint's."""
    return _received(request, connect=True)


def _received(request: HttpRequest, *, connect: bool) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InvalidInput("Webhook bodies must be application/json.")
    refuse_oversized_body(request, allowance=4)  # events outgrow our own requests
    record = webhooks.webhook_receive(
        payload=request.body,
        signature=request.headers.get("Stripe-Signature", ""),
        connect=connect,
    )
    data = {"event_id": record.event_id, "status": record.status, "result": record.result}
    return ok(data, "Event received.")


@link_router.get(
    "/pay/{token}/",
    response=responses(303, None, 404, 409, 429, 502),
    url_name="payment_link",
    throttle=PUBLIC_PAGES,
    summary="Open the order's checkout (redirect)",
)
def payment_link(request: HttpRequest, token: str) -> HttpResponseRedirect:
    order = order_for_link(token)
    url = checkout.checkout_open(order=order, base_url=request.build_absolute_uri("/"))
    response = HttpResponseRedirect(url)
    response.status_code = 303
    return response


@orders_router.post(
    "/{id}/checkout/",
    response=responses(200, Envelope[OrderOut], 401, 403, 404, 409, 429, 502),
    auth=customers,
    throttle=SettingThrottle("CHECKOUT_THROTTLE_PER_USER", per="user"),
)
def order_checkout(request: AuthedRequest, id: uuid.UUID) -> dict[str, Any]:
    order = order_selectors.order_of_customer(order_id=id, user=request.auth)
    checkout.checkout_url_for_customer(order=order, base_url=request.build_absolute_uri("/"))
    return ok(order, "Use payment_url to pay.")


@orders_router.post(
    "/{id}/refund/",
    response=responses(200, Envelope[OrderOut], 401, 403, 404, 409, 429, 502),
    auth=vendors_and_admins,
    throttle=SettingThrottle("REFUND_THROTTLE_PER_USER", per="user"),
)
def order_refund(request: AuthedRequest, id: uuid.UUID) -> dict[str, Any]:
    order = refunds.order_refund(
        order=order_selectors.order_for_refund(order_id=id, user=request.auth)
    )
    if order.status != OrderStatus.REFUNDED:
        return ok(order, "Refund requested; the order becomes refunded when the provider confirms.")
    return ok(order, "Order refunded.")
