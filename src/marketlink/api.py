"""The JSON API: :func:`build_api` assembles the apps' routers behind our envelope."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.http import HttpRequest
from ninja import NinjaAPI

from marketlink import __version__, audit
from marketlink.envelope import JSONParser, install_error_handlers


def build_api(**options: Any) -> NinjaAPI:
    """A NinjaAPI with every marketlink router, the strict parser and the envelope's handlers.

    ``marketlink.urls`` calls this once; a host that wants the API under its own NinjaAPI options
    (title, docs URL, a different ``urls_namespace``) may call it itself with ``options``. Each
    router can be attached to one API only, so call it once per process.
    """
    from marketlink.accounts.api import router as accounts_router
    from marketlink.catalog.api import router as catalog_router
    from marketlink.health import router as health_router
    from marketlink.orders.api import router as orders_router
    from marketlink.payments.api import link_router, webhook_router
    from marketlink.payments.api import orders_router as order_payments_router
    from marketlink.vendors.api import router as vendors_router

    api = NinjaAPI(
        **{
            "title": "marketlink",
            "version": __version__,
            "description": "Vendors, a stock-limited catalogue, orders and payments.",
            "urls_namespace": "marketlink",
            "parser": JSONParser(),
            **options,
        }
    )
    install_error_handlers(api)
    api.add_decorator(acting_as_caller)
    api.add_router("/users/", accounts_router)
    api.add_router("/vendors/", vendors_router)
    api.add_router("/services/", catalog_router)
    api.add_router("/orders/", orders_router)
    # Checkout and refund of an order: payments' own routes, under the orders' prefix.
    api.add_router("/orders/", order_payments_router)
    api.add_router("/payments/", link_router)
    api.add_router("/webhooks/", webhook_router)
    api.add_router("/health/", health_router)
    if apps.is_installed("marketlink.payouts"):
        from marketlink.payouts.api import pages_router, vendor_router

        # A vendor's payouts, beside their profile under the same prefix (distinct paths).
        api.add_router("/vendors/", vendor_router)
        api.add_router("/payouts/", pages_router)
    return api


def acting_as_caller(operation: Callable[..., Any]) -> Callable[..., Any]:
    """Run an operation, after authentication, in the ``audit`` scope of its caller (no one for
    an anonymous call), so the order history names who made each change. Every operation opens
    its own scope and leaves it when it returns or raises: none reaches the next request."""

    @functools.wraps(operation)
    def run(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        with audit.acting(user=getattr(request, "auth", None)):
            return operation(request, *args, **kwargs)

    return run
