"""The dummy gateway's hosted checkout page: a plain Django view, HTML for a person's browser.

Its template lives in this package (``templates/dummy_checkout.html``), rendered by an engine of
its own, so the gateway is one folder a site can drop without leaving a page behind."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template import Engine, RequestContext
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from marketlink.exceptions import MarketlinkError
from marketlink.payments import webhooks
from marketlink.payments.gateways.dummy.gateway import emit_session_event
from marketlink.payments.models import DummyCheckoutSession
from marketlink.throttles import PUBLIC_PAGES, throttle_view

_ENGINE = Engine(
    dirs=[str(Path(__file__).parent / "templates")],
    context_processors=["django.template.context_processors.csrf"],
)


def page(
    request: HttpRequest,
    context: dict[str, Any],
    status: int = 200,
    template: str = "dummy_checkout.html",
) -> HttpResponse:
    """One of the dummy's pages (its templates are in this package)."""
    found = _ENGINE.get_template(template)
    return HttpResponse(found.render(RequestContext(request, context)), status=status)


@require_http_methods(["GET", "POST"])
@throttle_view(PUBLIC_PAGES)
def dummy_checkout(request: HttpRequest, session_id: str) -> HttpResponse:
    session = get_object_or_404(DummyCheckoutSession, pk=session_id)
    if session.status == "open" and session.expires_at <= timezone.now():
        session.status = "expired"
        session.save(update_fields=["status"])
    if request.method == "GET" or session.status != "open":
        return page(request, {"session": session})
    paying = request.POST.get("action") == "pay"
    if paying:
        session.status, session.payment_status = "complete", "paid"
        session.payment_intent_id = f"pi_dummy_{secrets.token_hex(12)}"
        event_type, target = "checkout.session.completed", session.success_url
    else:
        event_type, target = "payment_intent.payment_failed", session.cancel_url
    try:
        # One transaction: a payment the pipeline could not take leaves the session open, and
        # the dummy keeps no record of an event that did not happen.
        with transaction.atomic():
            if paying:
                session.save(update_fields=["status", "payment_status", "payment_intent_id"])
            payload, signature = emit_session_event(session, event_type)
            # The same pipeline a Stripe delivery takes: verification, storage, processing.
            webhooks.webhook_receive(payload=payload, signature=signature)
    except MarketlinkError as exc:
        session.refresh_from_db()
        context = {"session": session, "problem": exc.message}
        return page(request, context, status=exc.status_code)
    return HttpResponseRedirect(target.replace("{CHECKOUT_SESSION_ID}", session.id), status=303)
