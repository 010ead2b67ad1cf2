"""Vendors' connected accounts: made on the first onboarding request (once, whatever the
races), onboarded through the provider's hosted pages, and kept current from the provider's
events and reads. What an account says decides the gate: ``VendorProfile.payouts_ready``.

No function here holds a transaction across a call to the provider.
"""

from __future__ import annotations

import logging
from urllib.parse import urljoin

from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from marketlink import conf
from marketlink.exceptions import Conflict
from marketlink.payments.gateways import get_gateway
from marketlink.payments.gateways.base import AccountLink, AccountRequest, ProviderAccount
from marketlink.payouts.models import ConnectedAccount
from marketlink.vendors.models import VendorProfile

logger = logging.getLogger(__name__)

PAGE_SALT = "marketlink.payouts.onboarding"
INCOMPLETE = (
    "Your payout account has not finished onboarding: finish it through "
    "POST /vendors/payouts/onboarding/ first."
)


def account_onboarding_link(*, vendor: VendorProfile, base_url: str) -> AccountLink:
    """A single-use link to the provider's onboarding for ``vendor``, whose account is made
    on first use. The link is handed to the vendor, never stored."""
    account = account_of_vendor(vendor)
    refresh_url, return_url = return_urls(vendor, base_url)
    link = get_gateway().create_account_link(
        account.account_id, refresh_url=refresh_url, return_url=return_url
    )
    return AccountLink(url=urljoin(base_url, link.url), expires_at=link.expires_at)


def account_of_vendor(vendor: VendorProfile) -> ConnectedAccount:
    """The vendor's account, made at the provider the first time. The request's idempotency
    key is the vendor's, so concurrent first requests get one account from the provider; the
    row is unique per vendor, so one of them keeps it."""
    existing = ConnectedAccount.objects.filter(vendor=vendor).first()
    if existing is not None:
        return existing
    gateway = get_gateway()
    platform = gateway.platform_country()
    country = conf.get().CONNECT_COUNTRY or platform
    state = gateway.create_account(
        AccountRequest(
            vendor_id=str(vendor.pk),
            email=(vendor.user.email if vendor.user else "") or "",
            country=country,
            # Across borders Stripe transfers only to recipients (docs/payouts.md).
            recipient=country != platform,
            idempotency_key=f"marketlink-account-{vendor.pk}",
        )
    )
    try:
        with transaction.atomic():
            account = ConnectedAccount.objects.create(
                vendor=vendor, account_id=state.id, gateway=gateway.name
            )
    except IntegrityError:
        return ConnectedAccount.objects.get(vendor=vendor)
    logger.info(
        "vendor %s: connected account %s made",
        vendor.pk,
        state.id,
        extra={"event": "payouts.account_created", "vendor_id": vendor.pk},
    )
    return account_record(account_id=state.id, state=state) or account


def return_urls(vendor: VendorProfile, base_url: str) -> tuple[str, str]:
    """Where the provider's onboarding sends the vendor: ``(refresh, return)``, the host's
    templates or marketlink's own pages (which make a new link, or say what happened)."""
    config = conf.get()
    token = signing.dumps(str(vendor.pk), salt=PAGE_SALT)
    own_refresh = urljoin(base_url, reverse("marketlink:payouts_refresh", args=[token]))
    own_return = urljoin(base_url, reverse("marketlink:payouts_return", args=[token]))
    refresh = config.CONNECT_REFRESH_URL or own_refresh
    done = config.CONNECT_RETURN_URL or own_return
    return refresh.replace("{vendor_id}", str(vendor.pk)), done.replace(
        "{vendor_id}", str(vendor.pk)
    )


def vendor_of_page(token: str) -> VendorProfile | None:
    """The vendor an onboarding page's token names (None: not a token of ours)."""
    try:
        vendor_id = signing.loads(token, salt=PAGE_SALT)
    except signing.BadSignature:
        return None
    return VendorProfile.objects.filter(pk=vendor_id).first()


def account_record(*, account_id: str, state: ProviderAccount) -> ConnectedAccount | None:
    """Write what the provider says of an account, and open or close its vendor's gate. None
    when the account is not one of marketlink's vendors'."""
    with transaction.atomic():
        account = ConnectedAccount.objects.select_for_update().filter(account_id=account_id).first()
        if account is None:
            return None
        was_ready = account.ready
        account.country = (state.country or account.country)[:2]
        account.charges_enabled = state.charges_enabled
        account.payouts_enabled = state.payouts_enabled
        account.details_submitted = state.details_submitted
        account.transfers_active = state.transfers_active
        account.requirements_due = list(state.requirements_due)
        account.refreshed_at = timezone.now()
        account.save()
        _gate(account, was_ready)
    return account


def account_deauthorized(*, account_id: str) -> ConnectedAccount | None:
    """The account disconnected from the platform: the gate closes for good, and staff look."""
    with transaction.atomic():
        account = ConnectedAccount.objects.select_for_update().filter(account_id=account_id).first()
        if account is None:
            return None
        was_ready = account.ready
        account.deauthorized = account.needs_attention = True
        account.note = "the account disconnected from the platform: the vendor cannot be paid"
        account.save()
        _gate(account, was_ready)
    return account


def _gate(account: ConnectedAccount, was_ready: bool) -> None:
    """``payouts_ready`` follows the account. A gate that closes is logged: bookings stop until
    the account can be paid again (never take money you cannot route)."""
    ready = account.ready
    VendorProfile.objects.filter(pk=account.vendor_id).exclude(payouts_ready=ready).update(
        payouts_ready=ready, updated_at=timezone.now()
    )
    if ready != was_ready:
        logger.log(
            logging.INFO if ready else logging.WARNING,
            "vendor %s: payouts %s",
            account.vendor_id,
            "ready: bookings open" if ready else "not ready: bookings closed",
            extra={
                "event": "payouts.ready" if ready else "payouts.not_ready",
                "vendor_id": account.vendor_id,
                "account_id": account.account_id,
            },
        )


def account_refresh(account: ConnectedAccount) -> ConnectedAccount:
    """Read the account from the provider and record it (a vendor's payout page, reconcile)."""
    state = get_gateway().fetch_account(account.account_id)
    return account_record(account_id=account.account_id, state=state) or account


def account_dashboard_link(*, vendor: VendorProfile, base_url: str) -> str:
    """A login link to the vendor's dashboard at the provider, once onboarding is finished (read
    again first if marketlink has not heard so yet)."""
    account = ConnectedAccount.objects.filter(vendor=vendor).first()
    if account is not None and not account.details_submitted:
        account = account_refresh(account)
    if account is None or not account.details_submitted:
        raise Conflict(INCOMPLETE, code="payouts_onboarding_incomplete")
    return urljoin(base_url, get_gateway().create_login_link(account.account_id))
