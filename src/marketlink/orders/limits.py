"""How many live reservations one customer may hold: ``PENDING_ORDER_LIMIT`` overall and
``PENDING_ORDER_LIMIT_PER_VARIANT`` of one variant.

Without them one customer could book a variant's whole stock and, by booking again as each
reservation lapses, keep everyone else out for good. Only *live* pending orders count: a
reservation that lapsed holds nothing (booking reclaims its unit), so it does not count either.

The check must hold when the same customer books twice at once (two tabs, a script): both
counts would see room and both insert. So the booking first locks the customer's account row
(``SELECT … FOR UPDATE``) in the transaction that then counts and inserts; a second booking by
the same customer waits on that row until the first commits, and then counts its order. The
booking takes it inside the variant lock, never the other way round, so no two bookings can
wait on each other. With both limits off (None) none of this runs and the booking keeps its
single-statement path.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from marketlink import conf, metrics
from marketlink.accounts.models import Account
from marketlink.exceptions import Conflict
from marketlink.orders.models import OrderStatus, RepairOrder

logger = logging.getLogger(__name__)


class PendingOrderLimit(Conflict):
    """The customer holds as many live pending orders as a limit allows (409, ``code`` names
    the setting in lower case)."""


def _refused(message: str, code: str, variant_id: uuid.UUID) -> PendingOrderLimit:
    logger.info(
        "booking of variant %s refused: %s",
        variant_id,
        code,
        extra={"event": "reservation.limit", "variant_id": variant_id, "limit": code},
    )
    metrics.booking_answered("limit")
    return PendingOrderLimit(message, code=code)


def limits_apply() -> bool:
    config = conf.get()
    return (config.PENDING_ORDER_LIMIT, config.PENDING_ORDER_LIMIT_PER_VARIANT) != (None, None)


def lock_customer(customer: Any) -> None:
    """Hold the customer's account row until the caller's transaction ends (see module doc)."""
    list(Account.objects.select_for_update().filter(user=customer).values_list("pk"))


def refuse_over_limits(*, customer: Any, variant_id: uuid.UUID) -> None:
    """:class:`PendingOrderLimit` if one more order would exceed a limit; call it after
    :func:`lock_customer`, in the same transaction."""
    config = conf.get()
    held = RepairOrder.objects.filter(
        customer=customer, status=OrderStatus.PENDING, expires_at__gt=timezone.now()
    ).aggregate(overall=Count("pk"), of_variant=Count("pk", filter=Q(variant_id=variant_id)))
    overall, per_variant = config.PENDING_ORDER_LIMIT, config.PENDING_ORDER_LIMIT_PER_VARIANT
    if per_variant is not None and held["of_variant"] >= per_variant:
        raise _refused(
            f"You already hold {held['of_variant']} unpaid orders of this variant, the limit "
            f"per variant ({per_variant}); pay or cancel one, or wait for one to lapse.",
            "pending_order_limit_per_variant",
            variant_id,
        )
    if overall is not None and held["overall"] >= overall:
        raise _refused(
            f"You already hold {held['overall']} unpaid orders, the limit ({overall}); pay or "
            "cancel one, or wait for one to lapse.",
            "pending_order_limit",
            variant_id,
        )
