"""``/orders/``: booking, the customer's and the vendor's lists, cancel and complete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from django.http import HttpRequest, HttpResponse
from ninja import Header, Query, Router, Status

from marketlink.accounts.auth import (
    AuthedRequest,
    authenticated,
    customers,
    vendors,
)
from marketlink.accounts.services import booking_email
from marketlink.envelope import Envelope, PageEnvelope, ok, paginate, responses
from marketlink.orders import payment_hooks, selectors, services
from marketlink.orders.schemas import (
    IdempotencyKey,
    OrderIn,
    OrderOut,
    OrderQuery,
    PaymentStateOut,
)
from marketlink.throttles import PUBLIC_PAGES, SettingThrottle
from marketlink.vendors.selectors import vendor_profile_of

router = Router(tags=["orders"])

IDEMPOTENCY = "Retrying with the same key returns the order the first attempt made (200)."


@router.post(
    "/",
    response=responses(201, Envelope[OrderOut], 401, 403, 404, 409, 429, 502, 503, body=True)
    | {200: Envelope[OrderOut]},
    auth=customers,
    throttle=[
        SettingThrottle("BOOKING_THROTTLE_PER_USER", per="user"),
        SettingThrottle("BOOKING_THROTTLE_PER_ADDRESS"),
    ],
)
def order_create(
    request: AuthedRequest,
    response: HttpResponse,
    payload: OrderIn,
    idempotency_key: Annotated[
        IdempotencyKey | None, Header(alias="Idempotency-Key", description=IDEMPOTENCY)
    ] = None,
) -> Status[dict[str, Any]]:
    order, created = services.order_place(
        customer=request.auth,
        customer_email=booking_email(request.auth),
        variant_id=payload.variant_id,
        idempotency_key=idempotency_key,
    )
    if created:
        payment_hooks.get().after_booking(order, request.build_absolute_uri("/"))
    if not created:
        response["Idempotent-Replayed"] = "true"
        return Status(200, ok(order, "This order was already created with that Idempotency-Key."))
    return Status(201, ok(order, "Repair order created successfully. Proceed to payment."))


@router.get("/my/", response=responses(200, PageEnvelope[OrderOut], 401, 403), auth=customers)
def order_list_mine(request: AuthedRequest, query: Query[OrderQuery]) -> dict[str, Any]:
    return paginate(selectors.orders_of_customer(user=request.auth, status=query.status), query)


@router.get(
    "/vendor/", response=responses(200, PageEnvelope[OrderOut], 401, 403, 404), auth=vendors
)
def order_list_vendor(request: AuthedRequest, query: Query[OrderQuery]) -> dict[str, Any]:
    vendor = vendor_profile_of(request.auth)
    return paginate(selectors.orders_of_vendor(vendor=vendor, status=query.status), query)


@router.get("/{id}/", response=responses(200, Envelope[OrderOut], 401, 404), auth=authenticated)
def order_detail(request: AuthedRequest, id: uuid.UUID) -> dict[str, Any]:
    return ok(selectors.order_visible_to(order_id=id, user=request.auth))


@router.post(
    "/{id}/cancel/",
    response=responses(200, Envelope[OrderOut], 401, 403, 404, 409, 429),
    auth=customers,
    throttle=SettingThrottle("CANCEL_THROTTLE_PER_USER", per="user"),
)
def order_cancel(request: AuthedRequest, id: uuid.UUID) -> dict[str, Any]:
    order = services.order_cancel(order=selectors.order_of_customer(order_id=id, user=request.auth))
    return ok(order, "Order cancelled; its reservation is released.")


@router.get(
    "/{id}/cancel/",
    response=responses(200, Envelope[PaymentStateOut], 404, 429),
    throttle=PUBLIC_PAGES,
)
def checkout_cancelled(request: HttpRequest, id: uuid.UUID) -> dict[str, Any]:
    """Where the hosted checkout sends a customer who gave up. Changes nothing."""
    return ok(selectors.order_payment_state(order_id=id), "Payment was not completed.")


@router.get(
    "/{id}/success/",
    response=responses(200, Envelope[PaymentStateOut], 404, 429),
    throttle=PUBLIC_PAGES,
)
def checkout_succeeded(request: HttpRequest, id: uuid.UUID) -> dict[str, Any]:
    """Where the hosted checkout sends a customer who paid. Only the provider's signed webhook
    marks an order paid; this page may ask the provider, to say so sooner."""
    state = selectors.order_payment_state(order_id=id)
    message = (
        "Payment confirmed."
        if state["status"] != "pending"
        else "Payment received; confirmation is on its way."
        if state["provider_says_paid"]
        else "Waiting for the payment provider's confirmation."
    )
    return ok(state, message)


@router.post(
    "/{id}/complete/", response=responses(200, Envelope[OrderOut], 401, 403, 404, 409), auth=vendors
)
def order_complete(request: AuthedRequest, id: uuid.UUID) -> dict[str, Any]:
    order = selectors.order_of_vendor(order_id=id, user=request.auth)
    return ok(services.order_complete(order=order), "Order completed.")
