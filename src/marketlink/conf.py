"""The one home of marketlink's settings.

A host configures marketlink with a single ``MARKETLINK`` dict in its Django settings. This module
owns the defaults, validates the dict with pydantic (so a typo or a wrong type is reported by
``manage.py check`` instead of surfacing as a 500 later) and reads it *live*: the parsed value is
cached only until Django's ``setting_changed`` signal fires, so ``override_settings`` in a host's
tests works as they expect.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from marketlink.countries import ISO_CODES

__all__ = [
    "ABUSE_LIMITS_OFF",
    "SECRET_SETTINGS",
    "InvalidSettings",
    "MarketlinkSettings",
    "get",
    "secret_values",
    "validation_errors",
]

# A throttle's rate, "<requests>/<s|min|hour|day>"; None switches the throttle off.
Rate = str | None


class MarketlinkSettings(BaseModel):
    """Every key a host may put in ``settings.MARKETLINK``, with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- API frame -------------------------------------------------------------------------
    PAGE_SIZE: int = Field(20, ge=1, description="Default `limit` of list endpoints.")
    MAX_PAGE_SIZE: int = Field(100, ge=1, description="Largest `limit` a client may ask for.")
    MAX_BODY_BYTES: int = Field(
        64 * 1024, ge=1024, description="Largest JSON request body accepted (413 above)."
    )

    # --- Accounts --------------------------------------------------------------------------
    ACCESS_TOKEN_LIFETIME: int = Field(3600, ge=60, description="JWT access token life, seconds.")
    REFRESH_TOKEN_LIFETIME: int = Field(
        7 * 24 * 3600, ge=60, description="JWT refresh token life, seconds."
    )
    AUTH_USER_CACHE: float = Field(
        5.0,
        ge=0,
        le=300,
        description="Seconds a process reuses the user behind an access token (0: never).",
    )
    LOGIN_THROTTLE: Rate = Field("10/min", description="Login attempts per client address.")
    REGISTER_THROTTLE: Rate = Field("20/hour", description="Registrations per client address.")

    # --- Orders and stock ------------------------------------------------------------------
    CURRENCY: str = Field(
        "usd",
        pattern=r"^[A-Za-z]{3}$",
        description="ISO 4217 code of a currency Stripe charges in (checked: marketlink.E008).",
    )
    RESERVATION_TTL: int = Field(
        30 * 60,
        ge=60,
        le=24 * 3600,  # Stripe refuses a Checkout Session that lives longer than a day
        description="Seconds a pending order holds its unit of stock.",
    )
    LOCK_BACKEND: Literal["auto", "redis", "database"] = Field(
        "auto",
        description="`auto` uses the Redis lock when LOCK_CACHE is a django-redis cache.",
    )
    LOCK_CACHE: str = Field("default", description="The CACHES alias holding the booking locks.")
    LOCK_TTL: float = Field(
        10.0, gt=0, description="Seconds before a crashed holder's lock lapses."
    )
    LOCK_WAIT: float = Field(
        5.0, ge=0, description="Seconds a booking waits for a busy variant lock before 503."
    )
    PENDING_ORDER_LIMIT: int | None = Field(
        10, ge=1, description="Live pending orders one customer may hold (None: no limit)."
    )
    PENDING_ORDER_LIMIT_PER_VARIANT: int | None = Field(
        3,
        ge=1,
        description="Live pending orders one customer may hold of one variant (None: no limit).",
    )

    # --- Several hosts ------------------------------------------------------------------------
    DATABASE_POOLING: Literal["none", "session", "transaction"] = Field(
        "none",
        description="How the database is reached: `transaction` behind PgBouncer's transaction "
        "pooling (checked: marketlink.W004), `session` behind session pooling, `none` directly.",
    )
    HEARTBEAT_CACHE: str = Field(
        "default", description="The CACHES alias holding the Huey consumers' heartbeats."
    )

    # --- Throttles (a rate like "60/min"; None: not throttled) -----------------------------
    THROTTLE_CACHE: str = Field("default", description="The CACHES alias holding throttle counts.")
    BOOKING_THROTTLE_PER_USER: Rate = Field("60/min", description="Bookings per customer.")
    BOOKING_THROTTLE_PER_ADDRESS: Rate = Field("600/min", description="Bookings per address.")
    CANCEL_THROTTLE_PER_USER: Rate = Field("30/min", description="Order cancels per customer.")
    CHECKOUT_THROTTLE_PER_USER: Rate = Field(
        "30/min", description="New payment URLs (POST /orders/{id}/checkout/) per customer."
    )
    REFUND_THROTTLE_PER_USER: Rate = Field("30/min", description="Refunds asked per user.")
    PUBLIC_PAGE_THROTTLE: Rate = Field(
        "120/min",
        description="Checkout return pages, payment links and the dummy checkout page, per "
        "address, together.",
    )

    # --- Payments --------------------------------------------------------------------------
    PAYMENT_GATEWAY: Literal["dummy", "stripe"] = "dummy"
    PAYMENT_LINK_MODE: Literal["link", "eager"] = Field(
        "link", description="`link`: stable marketlink URL; `eager`: Stripe's URL at booking."
    )
    STRIPE_SECRET_KEY: str = ""
    STRIPE_WEBHOOK_SECRET: str = ""
    STRIPE_WEBHOOK_SECRET_PREVIOUS: str = Field(
        "", description="The secret being rotated out, accepted beside STRIPE_WEBHOOK_SECRET."
    )
    STRIPE_MODE: Literal["test", "live"] | None = Field(
        None,
        description="Stripe's mode this site runs in: keys and events of the other mode are "
        "refused; None: expected from DEBUG (live with DEBUG off), a mismatch only warned.",
    )
    STRIPE_API_BASE: str = Field("", description="Point the Stripe SDK at another server.")
    STRIPE_WEBHOOK_TOLERANCE: int = Field(300, ge=1, description="Signature age limit, seconds.")
    SUCCESS_URL: str = Field("", description="Template with {order_id}; empty: our own page.")
    CANCEL_URL: str = Field("", description="Template with {order_id}; empty: our own page.")
    INVOICE_FROM_EMAIL: str = Field("", description="Empty: Django's DEFAULT_FROM_EMAIL.")
    INVOICE_GRACE_PERIOD: int = Field(
        30 * 60,
        ge=60,
        description="Seconds an unsent invoice may go untouched before reconcile sends it again.",
    )
    OUTBOX_CLAIM_SECONDS: int = Field(
        300,
        ge=5,
        le=3600,
        description="Seconds a drainer holds the outbox entries it claimed: longer than a batch "
        "takes; an entry whose drainer died is due again after it.",
    )
    OUTBOX_WAKE_DELAY: float = Field(
        1.0,
        ge=0,
        le=60,
        description="Seconds a consumer waits after the first wake before draining: what is "
        "owed meanwhile goes in the same batch (0: at once).",
    )
    OUTBOX_KEEP_DAYS: int = Field(
        7,
        ge=1,
        description="Days a done outbox entry is kept (what was sent, when) before the "
        "periodic drain deletes it; failed ones stay until a person deals with them.",
    )
    REFUND_GRACE_PERIOD: int = Field(
        30 * 60,
        ge=60,
        description="Seconds a refund asked for (or pending) may go untouched before it is "
        "asked again (or read again).",
    )

    # --- Payouts (Stripe Connect: separate charges and transfers) -------------------------
    PAYOUTS_ENABLED: bool = Field(
        False,
        description="Pay vendors their share through connected accounts (marketlink.payouts).",
    )
    PLATFORM_FEE_PERCENT: Decimal = Field(
        Decimal(0),
        ge=0,
        le=100,
        description="The platform's percentage of each order (a vendor's fee_percent wins).",
    )
    PLATFORM_FEE_FIXED: Decimal = Field(
        Decimal(0),
        ge=0,
        description="Added to each order's fee, in currency units (a multiple of the price step).",
    )
    PAYOUT_RELEASE: Literal["on_completion", "on_payment"] = Field(
        "on_completion", description="When the vendor's share is transferred."
    )
    STRIPE_CONNECT_WEBHOOK_SECRET: str = Field(
        "", description="Signing secret of the Connect webhook endpoint (whsec_...)."
    )
    CONNECT_COUNTRY: str = Field(
        "",
        description="ISO 3166 alpha-2 country of new connected accounts; empty: the platform's.",
    )
    CONNECT_RETURN_URL: str = Field(
        "", description="Template with {vendor_id}: after onboarding; empty: our own page."
    )
    CONNECT_REFRESH_URL: str = Field(
        "", description="Template with {vendor_id}: an expired onboarding link; empty: our own."
    )

    # --- Periodic jobs (Huey) ---------------------------------------------------------------
    PERIODIC_RECONCILE: bool | None = Field(
        None, description="Reconcile recent orders periodically; None: on with the Stripe gateway."
    )
    PERIODIC_RECONCILE_MINUTES: int = Field(
        10, ge=1, le=60, description="Minutes between periodic reconciles (a divisor of 60)."
    )

    @field_validator("CURRENCY")
    @classmethod
    def _lowercase_currency(cls, value: str) -> str:
        return value.lower()

    @field_validator("CONNECT_COUNTRY")
    @classmethod
    def _known_country(cls, value: str) -> str:
        code = value.strip().upper()
        if code and code not in ISO_CODES:
            raise ValueError("is not an ISO 3166-1 alpha-2 country code (e.g. US, GB, DE)")
        return code

    @field_validator("PERIODIC_RECONCILE_MINUTES")
    @classmethod
    def _divides_an_hour(cls, value: int) -> int:
        # The job runs on the minutes divisible by it, so the gaps are even only for divisors.
        if 60 % value:
            raise ValueError("does not divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)")
        return value

    def periodic_reconcile(self) -> bool:
        """Whether the periodic reconcile runs: as set, else only where a real provider can
        have lost a webhook (the dummy gateway's events never leave the site)."""
        if self.PERIODIC_RECONCILE is not None:
            return self.PERIODIC_RECONCILE
        return self.PAYMENT_GATEWAY == "stripe"

    @field_validator(
        "LOGIN_THROTTLE",
        "REGISTER_THROTTLE",
        "BOOKING_THROTTLE_PER_USER",
        "BOOKING_THROTTLE_PER_ADDRESS",
        "CANCEL_THROTTLE_PER_USER",
        "CHECKOUT_THROTTLE_PER_USER",
        "REFUND_THROTTLE_PER_USER",
        "PUBLIC_PAGE_THROTTLE",
    )
    @classmethod
    def _valid_rate(cls, value: Rate) -> Rate:
        if value is None:
            return value
        from ninja.throttling import SimpleRateThrottle

        try:
            SimpleRateThrottle.parse_rate(SimpleRateThrottle, value)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError("not a rate like '10/min'") from None
        return value


# The settings that hold secrets: their values are never shown (``marketlink doctor`` scrubs
# them from whatever it prints, however the rest of the settings are).
SECRET_SETTINGS = frozenset(
    {
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "STRIPE_WEBHOOK_SECRET_PREVIOUS",
        "STRIPE_CONNECT_WEBHOOK_SECRET",
    }
)

# Every per-customer limit and throttle off: what a host merges into ``MARKETLINK`` for a load
# test (``{**MARKETLINK, **conf.ABUSE_LIMITS_OFF}``), as the benchmark does.
ABUSE_LIMITS_OFF: dict[str, None] = {
    "PENDING_ORDER_LIMIT": None,
    "PENDING_ORDER_LIMIT_PER_VARIANT": None,
    "LOGIN_THROTTLE": None,
    "REGISTER_THROTTLE": None,
    "BOOKING_THROTTLE_PER_USER": None,
    "BOOKING_THROTTLE_PER_ADDRESS": None,
    "CANCEL_THROTTLE_PER_USER": None,
    "CHECKOUT_THROTTLE_PER_USER": None,
    "REFUND_THROTTLE_PER_USER": None,
    "PUBLIC_PAGE_THROTTLE": None,
}

_cached: MarketlinkSettings | None = None


class InvalidSettings(ImproperlyConfigured):
    """``settings.MARKETLINK`` does not validate; the message names each problem (never a
    value)."""


def _raw() -> dict[str, Any]:
    raw = getattr(django_settings, "MARKETLINK", None) or {}
    if not isinstance(raw, dict):
        raise InvalidSettings("settings.MARKETLINK must be a dict")
    return raw


def get() -> MarketlinkSettings:
    """The current settings, parsed once per change of ``settings.MARKETLINK``. Invalid ones
    raise ``InvalidSettings`` naming each problem, never pydantic's error, whose text
    quotes the values (a mistyped key's secret with them) into tracebacks and logs."""
    global _cached
    if _cached is None:
        try:
            _cached = MarketlinkSettings.model_validate(_raw())
        except ValidationError as exc:
            problems = "; ".join(_problems(exc))
            raise InvalidSettings(f"settings.MARKETLINK is not valid: {problems}") from None
    return _cached


def validation_errors() -> list[str]:
    """Human-readable problems with ``settings.MARKETLINK``, for the system checks: where each
    is and what is wrong, never the value found there."""
    try:
        MarketlinkSettings.model_validate(_raw())
    except InvalidSettings as exc:
        return [str(exc)]
    except ValidationError as exc:
        return _problems(exc)
    return []


def _problems(exc: ValidationError) -> list[str]:
    # Location and message only: pydantic's messages state the rule (and ours never quote the
    # value), while its ``input`` and its ``str()`` carry the value itself.
    return [f"MARKETLINK[{'.'.join(map(str, e['loc']))!r}]: {e['msg']}" for e in exc.errors()]


def secret_values() -> list[str]:
    """What must never be shown, read from ``settings.MARKETLINK`` as it stands, valid or not:
    the values of the secret settings, and every text under a key that is not a setting (a
    mistyped name of a secret setting still holds the secret)."""
    try:
        raw = _raw()
    except InvalidSettings:
        return []
    known = MarketlinkSettings.model_fields
    return [
        value
        for key, value in raw.items()
        if isinstance(value, str) and (key in SECRET_SETTINGS or key not in known)
    ]


@receiver(setting_changed)
def _forget_cached_settings(*, setting: str, **_: Any) -> None:
    global _cached
    if setting == "MARKETLINK":
        _cached = None
