"""Huey's periodic jobs, reservation expiry and the periodic reconcile, run by a real
``manage.py run_huey`` consumer with its scheduler (on Redis and PostgreSQL). Huey's scheduler
checks the periodic jobs as it starts and then once a minute, so with the reconcile due every
minute (``periodic_site``) both run within seconds of the start: no clock is faked."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from live_site import site_env, start_huey, stop, wait_for
from mail_outbox import sent_emails
from order_helpers import history, new_order, refreshed

from marketlink.heartbeat import last_beat
from marketlink.orders.models import RepairOrder
from marketlink.payments.checkout import checkout_open
from marketlink.payments.periodic import reconcile_is_due

HERE = Path(__file__).parent


@pytest.mark.parametrize(
    ("marketlink", "minute", "due"),
    [
        ({"PAYMENT_GATEWAY": "stripe"}, 20, True),
        ({"PAYMENT_GATEWAY": "stripe"}, 21, False),
        ({"PAYMENT_GATEWAY": "dummy"}, 20, False),
        ({"PAYMENT_GATEWAY": "dummy", "PERIODIC_RECONCILE": True}, 20, True),
        ({"PAYMENT_GATEWAY": "stripe", "PERIODIC_RECONCILE": False}, 20, False),
        ({"PAYMENT_GATEWAY": "stripe", "PERIODIC_RECONCILE_MINUTES": 15}, 45, True),
        ({"PAYMENT_GATEWAY": "stripe", "PERIODIC_RECONCILE_MINUTES": 15}, 50, False),
    ],
)
def test_the_periodic_reconcile_is_on_with_stripe_and_follows_its_interval(
    settings, marketlink, minute, due
):
    settings.MARKETLINK = marketlink
    assert reconcile_is_due(datetime(2026, 12, 1, 9, minute, tzinfo=UTC)) is due


def test_an_interval_that_does_not_divide_the_hour_is_refused():
    from django.test import override_settings

    from marketlink.conf import validation_errors

    with override_settings(MARKETLINK={"PERIODIC_RECONCILE_MINUTES": 7}):
        [problem] = validation_errors()
    assert "does not divide 60" in problem


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_consumer_with_its_scheduler_runs_both_periodic_jobs(standin, outbox):
    from huey.contrib.djhuey import HUEY

    HUEY.flush()
    lapsed = new_order()
    RepairOrder.objects.filter(pk=lapsed.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    paid = new_order()
    checkout_open(order=paid, base_url="http://testserver/")
    standin.pay(refreshed(paid).checkout_session_id)  # the webhook never reaches the site
    assert last_beat() is None

    env = site_env(
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
        DJANGO_SETTINGS_MODULE="periodic_site",
        STRIPE_SECRET_KEY=standin.api_key,
        STRIPE_WEBHOOK_SECRET=standin.webhook_secret,
        STRIPE_API_BASE=standin.api_base,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(outbox),
    )
    consumer = start_huey(env, periodic=True)
    try:
        wait_for(lambda: refreshed(lapsed).status == "cancelled", timeout=90)
        # Reconciled (pending -> paid), then invoiced by the task reconcile enqueued.
        wait_for(lambda: refreshed(paid).status == "processing", timeout=90)
        [email] = wait_for(lambda: sent_emails(outbox))
    finally:
        stop(consumer)
    assert [(f, t, s) for f, t, s in history(paid)] == [
        ("pending", "paid", "task"),
        ("paid", "processing", "task"),
    ]
    assert last_beat() is not None
    assert paid.customer_email in email
    HUEY.flush()
