"""``/vendors/payouts/…``: a vendor's payout account and money (vendor role, own data only),
and ``/payouts/connect/…``: the pages the provider's onboarding sends the vendor back to. With
payouts off every one answers 404."""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponseRedirect
from ninja import Query, Router

from marketlink import conf
from marketlink.accounts.auth import AuthedRequest, vendors
from marketlink.envelope import Envelope, PageEnvelope, PageQuery, ok, paginate, responses
from marketlink.exceptions import NotFound
from marketlink.payments.gateways.base import GatewayError
from marketlink.payouts import accounts, selectors
from marketlink.payouts.schemas import (
    DashboardOut,
    EntryOut,
    OnboardingOut,
    OnboardingPageOut,
    PayoutsOut,
)
from marketlink.throttles import PUBLIC_PAGES
from marketlink.vendors.models import VendorProfile
from marketlink.vendors.selectors import vendor_profile_of

logger = logging.getLogger(__name__)

vendor_router = Router(tags=["payouts"], auth=vendors)
pages_router = Router(tags=["payouts"])


def _vendor(request: AuthedRequest) -> VendorProfile:
    _payouts_on()
    return vendor_profile_of(request.auth)


def _payouts_on() -> None:
    if not conf.get().PAYOUTS_ENABLED:
        raise NotFound("Payouts are not enabled on this site.")


@vendor_router.post(
    "/payouts/onboarding/", response=responses(200, Envelope[OnboardingOut], 401, 403, 404, 502)
)
def payouts_onboarding(request: AuthedRequest) -> dict[str, Any]:
    """A link to the provider's onboarding (the account is made on first use). It works once
    and soon expires: ask again for a new one."""
    link = accounts.account_onboarding_link(
        vendor=_vendor(request), base_url=request.build_absolute_uri("/")
    )
    return ok(link, "Open the link to set up your payout account; it works once.")


@vendor_router.get("/payouts/", response=responses(200, Envelope[PayoutsOut], 401, 403, 404))
def payouts_overview(request: AuthedRequest) -> dict[str, Any]:
    """The payout account as the provider says it now (read again on each visit), and the
    balance of the vendor's ledger."""
    vendor = _vendor(request)
    account = selectors.account_of(vendor)
    if account is not None:
        try:
            account = accounts.account_refresh(account)
        except GatewayError as exc:  # the page still answers, with what was last heard
            logger.warning("vendor %s: account not read again: %s", vendor.pk, exc.message)
    balance = selectors.balance_of(vendor, conf.get().CURRENCY)
    return ok({"account": account, "balance": balance})


@vendor_router.get(
    "/payouts/entries/", response=responses(200, PageEnvelope[EntryOut], 401, 403, 404)
)
def payouts_entries(request: AuthedRequest, query: Query[PageQuery]) -> dict[str, Any]:
    """The vendor's ledger, newest first: each amount signed from the vendor's point of view."""
    return paginate(selectors.entries_of(_vendor(request)), query)


@vendor_router.post(
    "/payouts/dashboard/", response=responses(200, Envelope[DashboardOut], 401, 403, 404, 409, 502)
)
def payouts_dashboard(request: AuthedRequest) -> dict[str, Any]:
    """A login link to the provider's dashboard of the vendor's account (409
    ``payouts_onboarding_incomplete`` before onboarding is finished)."""
    url = accounts.account_dashboard_link(
        vendor=_vendor(request), base_url=request.build_absolute_uri("/")
    )
    return ok({"url": url})


@pages_router.get(
    "/connect/refresh/{token}/",
    response=responses(303, None, 404, 429, 502),
    url_name="payouts_refresh",
    throttle=PUBLIC_PAGES,
    summary="A new onboarding link for an expired one (redirect)",
)
def payouts_refresh(request: HttpRequest, token: str) -> HttpResponseRedirect:
    link = accounts.account_onboarding_link(
        vendor=_page_vendor(token), base_url=request.build_absolute_uri("/")
    )
    return HttpResponseRedirect(link.url, status=303)


@pages_router.get(
    "/connect/return/{token}/",
    response=responses(200, Envelope[OnboardingPageOut], 404, 429, 502),
    url_name="payouts_return",
    throttle=PUBLIC_PAGES,
    summary="Where onboarding sends the vendor back: what it changed",
)
def payouts_return(request: HttpRequest, token: str) -> dict[str, Any]:
    """Coming back proves nothing (the vendor may have left half way): the account is read
    again, and the answer says whether it can now be paid."""
    vendor = _page_vendor(token)
    account = accounts.account_of_vendor(vendor)
    ready = accounts.account_refresh(account).ready
    message = (
        "Your payout account is ready: customers can book you."
        if ready
        else "Your payout account is not ready yet: the provider still needs some details "
        "(GET /vendors/payouts/ lists them), or is checking them."
    )
    return ok({"vendor_id": vendor.pk, "ready": ready}, message)


def _page_vendor(token: str) -> VendorProfile:
    _payouts_on()
    vendor = accounts.vendor_of_page(token)
    if vendor is None:
        raise NotFound("This onboarding page is not valid.")
    return vendor
