"""The dummy gateway's Connect pages: instant onboarding behind its Account Links, and the
account's dashboard behind its login links (what it was sent and what was taken back).

Finishing onboarding tells the site as Stripe would: an ``account.updated`` event, signed with
the dummy's Connect secret, through the Connect webhook pipeline, in the transaction that
onboards the account (a pipeline that cannot take it leaves the account as it was)."""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from marketlink.exceptions import MarketlinkError
from marketlink.money import format_minor_units
from marketlink.payments import webhooks
from marketlink.payments.gateways.dummy.connect import (
    LINK_LIFETIME,
    LINK_SALT,
    account_event,
    signed_connect_event,
)
from marketlink.payments.gateways.dummy.views import page
from marketlink.payments.models import DummyAccount, DummyEvent, DummyTransfer
from marketlink.throttles import PUBLIC_PAGES, throttle_view

TEMPLATE = "dummy_connect.html"


def _link(token: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = signing.loads(token, salt=LINK_SALT)
    except signing.BadSignature:
        raise Http404("No such link.") from None
    return data


def _redirect(url: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(url, status=303)


@require_http_methods(["GET", "POST"])
@throttle_view(PUBLIC_PAGES)
def dummy_onboarding(request: HttpRequest, token: str) -> HttpResponse:
    link = _link(token)
    try:
        signing.loads(token, salt=LINK_SALT, max_age=LINK_LIFETIME)
    except signing.SignatureExpired:
        return _redirect(link["refresh"])  # as Stripe sends a stale link's holder to refresh
    account = DummyAccount.objects.filter(pk=link["account"]).first()
    if account is None:
        raise Http404("No such account.")
    if request.method == "GET":
        return page(request, {"account": account, "onboarding": True}, template=TEMPLATE)
    if request.POST.get("action") == "finish" and not account.onboarded:
        try:
            with transaction.atomic():
                account.onboarded = True
                account.save(update_fields=["onboarded"])
                event = account_event(account)
                DummyEvent.objects.create(
                    id=event["id"],
                    event_type=event["type"],
                    payload=event,
                    created_at=timezone.now(),
                )
                payload, signature = signed_connect_event(event)
                webhooks.webhook_receive(payload=payload, signature=signature, connect=True)
        except MarketlinkError as exc:
            account.refresh_from_db()
            context = {"account": account, "onboarding": True, "problem": exc.message}
            return page(request, context, status=exc.status_code, template=TEMPLATE)
    return _redirect(link["return"])


def onboarding_finish(account: DummyAccount) -> None:
    """The account holder finishes onboarding: the account can be paid, and the site is told
    (``account.updated`` through the Connect pipeline, in the same transaction)."""
    with transaction.atomic():
        account.onboarded = True
        account.save(update_fields=["onboarded"])
        event = account_event(account)
        DummyEvent.objects.create(
            id=event["id"], event_type=event["type"], payload=event, created_at=timezone.now()
        )
        payload, signature = signed_connect_event(event)
        webhooks.webhook_receive(payload=payload, signature=signature, connect=True)


@require_http_methods(["GET"])
@throttle_view(PUBLIC_PAGES)
def dummy_dashboard(request: HttpRequest, token: str) -> HttpResponse:
    account = DummyAccount.objects.filter(pk=_link(token)["account"]).first()
    if account is None:
        raise Http404("No such account.")
    transfers = [
        {
            "id": transfer.id,
            "amount": format_minor_units(transfer.amount_minor, transfer.currency),
            "reversed": format_minor_units(transfer.amount_reversed_minor, transfer.currency),
            "order": transfer.order_ref,
            "created_at": transfer.created_at,
        }
        for transfer in DummyTransfer.objects.filter(destination=account)
    ]
    return page(request, {"account": account, "transfers": transfers}, template=TEMPLATE)
