"""The lost day: every webhook delivery of a day is lost, and the operator's two commands bring
30 orders back to the truth (PostgreSQL, Redis, a real Huey consumer, the Stripe stand-in).

While the stand-in drops every delivery, 20 orders are paid, 3 more are paid and then refunded
in Stripe's dashboard, 2 checkouts expire after their reservation lapsed and 5 stay open; with
payouts on, a second vendor finishes onboarding (its Connect events lost too). A dry run of
``webhooks replay --from-stripe`` and ``reconcile`` changes nothing and reports what the real
run then does; the real run puts every order right (each paid order invoiced once by the
consumer, the units adding up) and opens the second vendor's gate (reconcile reads its account
again); the paid orders, completed, are paid out by the consumer (the transfers' webhooks lost
as well), one transfer each, and the money adds up; a second run of both changes nothing and
finds nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_runner import invoke_json
from django.utils import timezone
from invariants import assert_invariants
from live_site import site_env, start_huey, stop, wait_for
from mail_outbox import sent_emails

from marketlink.orders.models import RepairOrder
from marketlink.orders.services import order_complete, order_place
from marketlink.payments.checkout import checkout_open
from marketlink.payments.models import Invoice, InvoiceStatus, PaymentEvent
from marketlink.payouts.accounts import account_of_vendor, account_refresh
from marketlink.payouts.models import Payout
from marketlink.testing.factories import AccountFactory, VariantFactory, VendorProfileFactory
from marketlink.vendors.models import VendorProfile

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

HERE = Path(__file__).parent


def snapshot() -> tuple[Any, ...]:
    """What a dry run must leave as it found it."""
    return (
        sorted(RepairOrder.objects.values_list("pk", "status")),
        PaymentEvent.objects.count(),
        Invoice.objects.count(),
        sorted(VendorProfile.objects.values_list("pk", "payouts_ready")),
        sorted(Payout.objects.values_list("order_id", "status")),
    )


def onboarded(standin: Any, vendor: Any) -> None:
    """The vendor's account made and onboarded at the stand-in; the site reads it once."""
    account = account_of_vendor(vendor)
    standin.finish_onboarding(account.account_id)
    account_refresh(account)


def the_day(standin: Any) -> dict[str, list[str]]:
    """30 orders through a day whose webhook deliveries are all lost."""
    seller = VendorProfileFactory()
    onboarded(standin, seller)
    variants = [VariantFactory(stock=10, service__vendor=seller) for _ in range(3)]
    orders = []
    for n in range(30):
        account = AccountFactory()
        order, _ = order_place(
            customer=account.user, customer_email=account.email, variant_id=variants[n % 3].id
        )
        checkout_open(order=order, base_url="http://testserver/")
        orders.append(RepairOrder.objects.get(pk=order.pk))
    fate = {
        "paid": orders[:20],
        "refunded": orders[20:23],
        "expired": orders[23:25],
        "open": orders[25:],
    }
    standin.drop_deliveries = True
    for order in fate["paid"] + fate["refunded"]:
        standin.pay(order.checkout_session_id)
    for order in fate["refunded"]:  # in the dashboard, while the site hears nothing
        standin.refund(standin.sessions[order.checkout_session_id]["payment_intent"])
    for order in fate["expired"]:
        RepairOrder.objects.filter(pk=order.pk).update(
            expires_at=timezone.now() - timedelta(minutes=5)
        )
        standin.expire(order.checkout_session_id)
    newcomer = VendorProfileFactory()  # onboards while its Connect events are lost
    account = account_of_vendor(newcomer)
    standin.finish_onboarding(account.account_id)
    assert not [d for d in standin.deliveries + standin.connect_deliveries if not d.dropped]
    assert not VendorProfile.objects.get(pk=newcomer.pk).payouts_ready
    return {name: [str(order.pk) for order in group] for name, group in fate.items()} | {
        "newcomer": [str(newcomer.pk)]
    }


def statuses(ids: list[str]) -> set[str]:
    return set(RepairOrder.objects.filter(pk__in=ids).values_list("status", flat=True))


def test_a_day_of_lost_webhooks_is_recovered_by_replay_and_reconcile(standin, outbox, settings):
    from huey.contrib.djhuey import HUEY

    HUEY.flush()
    settings.MARKETLINK = {
        **settings.MARKETLINK,
        "PAYOUTS_ENABLED": True,
        "PLATFORM_FEE_PERCENT": "10",
        "STRIPE_CONNECT_WEBHOOK_SECRET": standin.connect_webhook_secret,
    }
    fate = the_day(standin)
    env = site_env(
        STRIPE_SECRET_KEY=standin.api_key,
        STRIPE_WEBHOOK_SECRET=standin.webhook_secret,
        STRIPE_API_BASE=standin.api_base,
        STRIPE_CONNECT_WEBHOOK_SECRET=standin.connect_webhook_secret,
        MARKETLINK_PAYOUTS="on",
        MARKETLINK_PLATFORM_FEE_PERCENT="10",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(outbox),
    )
    consumer = start_huey(env)
    try:
        before = snapshot()
        code, dry_replay = invoke_json(
            "webhooks", "replay", "--from-stripe", "--since", "1d", "--dry-run"
        )
        assert code == 0
        code, _ = invoke_json("reconcile", "--dry-run")
        assert code == 0
        assert snapshot() == before
        # The platform's events: a connected account's are not in its Events API (reconcile
        # reads the accounts instead).
        platform = [event for event in standin.events if "account" not in event]
        assert dry_replay["summary"]["stored_now"] == len(platform)

        code, replayed = invoke_json("webhooks", "replay", "--from-stripe", "--since", "1d")
        assert code == 0, replayed["summary"]
        code, reconciled = invoke_json("reconcile")
        assert code == 0, reconciled["summary"]

        # The dry run reported what the real replay then did, event by event.
        assert [(i["event_id"], i["after"]) for i in replayed["items"]] == [
            (i["event_id"], i["after"]) for i in dry_replay["items"]
        ]
        paid = fate["paid"] + fate["refunded"]
        wait_for(
            lambda: (
                Invoice.objects.filter(order_id__in=paid, status=InvoiceStatus.SENT).count()
                == len(paid)
            ),
            timeout=120,
        )
        # Completed, the paid orders are paid out by the consumer, their webhooks lost too.
        for order in RepairOrder.objects.filter(pk__in=fate["paid"]):
            order_complete(order=order)
        wait_for(
            lambda: (
                Payout.objects.filter(order_id__in=fate["paid"], status="released").count()
                == len(fate["paid"])
            ),
            timeout=120,
        )
    finally:
        stop(consumer, graceful=True)

    assert VendorProfile.objects.get(pk=fate["newcomer"][0]).payouts_ready
    assert reconciled["summary"]["by_kind"]["account_changed"]["fixed"] == 1
    transferred = [t["metadata"]["order_id"] for t in standin.transfers.values()]
    assert sorted(transferred) == sorted(fate["paid"])  # one each, for the completed ones
    assert set(
        Payout.objects.filter(order_id__in=fate["refunded"]).values_list("status", flat=True)
    ) == {"cancelled"}

    assert statuses(fate["paid"]) == {"completed"}  # processing once recovered, then completed
    assert statuses(fate["refunded"]) == {"refunded"}
    assert statuses(fate["expired"]) == {"cancelled"}
    assert statuses(fate["open"]) == {"pending"}
    emails = sent_emails(outbox)
    for invoice in Invoice.objects.filter(order_id__in=paid):
        assert sum(invoice.number in email for email in emails) == 1
    assert_invariants(standin=standin)

    # The transfers' webhooks were lost too: replayed (kept now), each finds its transfer
    # recorded, and changes nothing else.
    before_late = snapshot()
    code, late = invoke_json("webhooks", "replay", "--from-stripe", "--since", "1d")
    assert (code, late["summary"]["stored_now"]) == (0, len(fate["paid"]))
    told = PaymentEvent.objects.filter(event_type="transfer.created")
    assert set(told.values_list("status", flat=True)) == {"processed"}
    after = snapshot()
    assert (after[0], *after[2:]) == (before_late[0], *before_late[2:])

    # Both commands again: nothing changes, nothing to fix.
    code, again = invoke_json("webhooks", "replay", "--from-stripe", "--since", "1d")
    assert (code, again["summary"]["stored_now"], again["summary"]["failed"]) == (0, 0, 0)
    code, again = invoke_json("reconcile")
    assert code == 0
    assert not [i for i in again["items"] if i.get("after") != i.get("before")]
    assert snapshot() == after
    HUEY.flush()
