"""``STRIPE_MODE``: on a site that says which of Stripe's modes it runs in, an event of the other
mode (a live endpoint pointed at a staging site, or the reverse) is kept and ignored, never
processed; on a site that does not say, every verified event is processed as before."""

from __future__ import annotations

from typing import Any

import pytest
from order_helpers import refreshed
from webhook_hook import Hook, completed

from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.payments.models import EventStatus, PaymentEvent
from marketlink.payments.webhooks import event_process
from marketlink.testing.stripe_server import StripeStandIn

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]


@pytest.fixture
def stripe_hook(standin: StripeStandIn, django_capture_on_commit_callbacks: Any) -> Hook:
    return Hook(standin.webhook_secret, django_capture_on_commit_callbacks)


def paid_in(order: RepairOrder, *, livemode: bool) -> dict[str, Any]:
    return {**completed(order), "livemode": livemode}


@pytest.mark.parametrize(("mode", "livemode"), [("test", True), ("live", False)])
def test_an_event_of_the_other_mode_is_kept_and_ignored(
    stripe_hook, settings, order, mailoutbox, mode, livemode
):
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_MODE": mode}
    body = paid_in(order, livemode=livemode)
    assert stripe_hook(body).status_code == 200  # answered, so Stripe does not retry it

    stored = PaymentEvent.objects.get(event_id=body["id"])
    assert stored.status == EventStatus.IGNORED
    assert not stored.needs_attention
    other = "live" if livemode else "test"
    assert stored.result == f"a {other}-mode event on a site whose STRIPE_MODE is {mode!r}"
    assert refreshed(order).status == OrderStatus.PENDING
    assert mailoutbox == []

    # An operator's forced replay meets the same rule.
    assert event_process(event_id=body["id"], force=True).status == EventStatus.IGNORED
    assert refreshed(order).status == OrderStatus.PENDING


@pytest.mark.parametrize(("mode", "livemode"), [("test", False), ("live", True), (None, True)])
def test_an_event_of_the_sites_mode_or_any_when_unset_is_processed(
    stripe_hook, settings, order, mode, livemode
):
    settings.MARKETLINK = {**settings.MARKETLINK, "STRIPE_MODE": mode}
    body = paid_in(order, livemode=livemode)
    assert stripe_hook(body).status_code == 200
    assert PaymentEvent.objects.get(event_id=body["id"]).status == EventStatus.PROCESSED
    assert refreshed(order).paid_at is not None
