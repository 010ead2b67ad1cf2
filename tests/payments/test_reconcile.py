"""``marketlink reconcile`` against the Stripe stand-in: the real SDK over HTTP, the webhooks
that would have told us never delivered. Each check finds what a lost event left wrong, fixes it
through the webhook's own handlers, and a second run finds nothing; a dry run reports the same
and changes nothing; the provider down is exit 3, a reached --limit exit 1."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cli_runner import invoke, invoke_json
from django.utils import timezone
from order_helpers import new_order
from stripe_shop import history, lapse, status_of, stock_of

from marketlink.orders.models import ChangeSource, RepairOrder
from marketlink.orders.services import orders_expire
from marketlink.outbox.models import OutboxEntry
from marketlink.outbox.services import outbox_write
from marketlink.payments import reconcile
from marketlink.payments.models import Invoice, InvoiceStatus, Refund
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("tasks_run_inline")]

KINDS = (
    "pending_paid",
    "pending_expired",
    "released_paid_late",
    "refunded_at_provider",
    "invoice_not_sent",
)


def found(document: dict) -> list[tuple[str, str, str, str]]:
    return [(i["order"], i["kind"], i["before"], i["after"]) for i in document["items"]]


def by_kind(document: dict, kind: str) -> tuple[int, int, int]:
    counts = document["summary"]["by_kind"][kind]
    return counts["found"], counts["fixed"], counts["needs_attention"]


def nothing_found(document: dict) -> bool:
    return document["items"] == [] and all(by_kind(document, k) == (0, 0, 0) for k in KINDS)


def test_a_lost_payment_is_confirmed_once_and_invoiced(
    shop, standin, customer_user, mailoutbox, django_capture_on_commit_callbacks
):
    order, session_id = shop.opened(customer_user, VariantFactory(stock=2))
    standin.pay(session_id)  # the customer paid; the webhook never reached us

    code, dry = invoke_json("reconcile", "--dry-run")
    assert code == 0
    assert dry["summary"]["dry_run"] is True
    assert found(dry) == [(order["id"], "pending_paid", "pending", "paid")]
    assert by_kind(dry, "pending_paid") == (1, 1, 0)
    assert status_of(order) == "pending"

    with django_capture_on_commit_callbacks(execute=True):
        code, real = invoke_json("reconcile")
    assert code == 0
    assert found(real) == found(dry)
    assert status_of(order) == "processing"
    assert [(f, t) for f, t, _ in history(order)] == [("pending", "paid"), ("paid", "processing")]
    assert history(order)[0][2] == ChangeSource.CLI
    assert len(mailoutbox) == 1

    code, again = invoke_json("reconcile")
    assert code == 0
    assert nothing_found(again)
    assert again["summary"]["checked"] >= 1


def test_an_expired_checkout_of_a_lapsed_reservation_cancels_the_order(
    shop, standin, customer_user
):
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    standin.expire(session_id)
    lapse(order)

    result = invoke("reconcile")

    assert result.exit_code == 0
    assert "pending expired" in result.stdout  # the by-kind table
    assert status_of(order) == "cancelled"
    assert stock_of(variant) == 1
    assert nothing_found(invoke_json("reconcile")[1])


def test_a_payment_after_the_reservation_ended_takes_its_unit_again(shop, standin, customer_user):
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    standin.pay(session_id)
    lapse(order)
    orders_expire(source=ChangeSource.TASK)  # the expiry job ran before anyone heard of it
    assert (status_of(order), stock_of(variant)) == ("cancelled", 1)

    code, document = invoke_json("reconcile", "--since", "1h")

    assert code == 0
    assert found(document) == [(order["id"], "released_paid_late", "cancelled", "paid")]
    assert "unit taken again" in document["items"][0]["outcome"]
    assert (status_of(order), stock_of(variant)) == ("paid", 0)


def test_a_refund_made_in_the_dashboard_is_found_and_applied(
    shop, standin, customer_user, django_capture_on_commit_callbacks
):
    variant = VariantFactory(stock=1)
    order, session_id = shop.opened(customer_user, variant)
    intent = standin.pay(session_id)
    shop.deliver_new()  # this time the webhooks arrived
    assert status_of(order) == "processing"
    standin.refund(intent["id"])  # in Stripe's dashboard, while webhooks were down
    [provider_refund] = standin.refunds.values()

    code, document = invoke_json("reconcile")

    assert code == 0
    assert found(document) == [(order["id"], "refunded_at_provider", "processing", "refunded")]
    assert status_of(order) == "refunded"
    assert stock_of(variant) == 1
    refund = Refund.objects.get(order_id=order["id"])
    assert (refund.provider_refund_id, refund.status) == (provider_refund["id"], "succeeded")
    assert nothing_found(invoke_json("reconcile")[1])


def test_a_pending_refund_at_the_provider_is_recorded_and_leaves_the_order_paid(
    shop, standin, customer_user
):
    order, session_id = shop.opened(customer_user, VariantFactory(stock=1))
    intent = standin.pay(session_id)
    shop.deliver_new()
    standin.refund_status = "pending"
    standin.refund(intent["id"])

    code, document = invoke_json("reconcile")

    assert code == 0
    assert by_kind(document, "refunded_at_provider") == (1, 1, 0)
    assert status_of(order) == "processing"
    assert Refund.objects.get(order_id=order["id"]).status == "pending"
    assert nothing_found(invoke_json("reconcile")[1])


def test_the_provider_down_is_exit_3_and_each_order_could_not_be_checked(
    shop, standin, customer_user
):
    orders = [shop.opened(customer_user, VariantFactory(stock=1)) for _ in range(4)]
    for _, session_id in orders:
        standin.pay(session_id)
    standin.down = True

    code, document = invoke_json("reconcile")

    assert code == 3
    assert document["summary"]["could_not_check"] == 4
    assert {i["result"] for i in document["items"]} == {"could_not_check"}
    # After three failures in a row the run stops asking (each one costs the SDK's retries).
    asked = [i for i in document["items"] if i["outcome"].startswith("could not ask")]
    assert len(asked) == reconcile.PROVIDER_DOWN_AFTER
    assert all(status_of(order) == "pending" for order, _ in orders)
    assert any("provider could not be asked" in n for n in document["summary"]["notes"])

    standin.down = False
    text = invoke("reconcile")
    assert text.exit_code == 0
    assert "pending paid" in text.stdout
    assert "exit code" in text.stdout
    assert all(status_of(order) == "paid" for order, _ in orders)


def test_pending_orders_newest_first_in_batches_and_a_reached_limit_says_so(
    shop, standin, monkeypatch
):
    monkeypatch.setattr(reconcile, "BATCH", 2)
    orders = []
    for _ in range(5):
        order, session_id = shop.opened(AccountFactory().user, VariantFactory(stock=1))
        standin.pay(session_id)
        orders.append(order)

    code, document = invoke_json("reconcile", "--limit", "3")

    assert code == 1
    assert document["summary"]["limit_reached"] == ["pending"]
    assert any("--limit 3 reached" in note for note in document["summary"]["notes"])
    newest_three = [o["id"] for o in reversed(orders[2:])]
    assert [i["order"] for i in document["items"]] == newest_three
    assert [status_of(o) for o in orders] == ["pending", "pending", "paid", "paid", "paid"]

    code, rest = invoke_json("reconcile")
    assert code == 0
    assert [i["order"] for i in rest["items"]] == [orders[1]["id"], orders[0]["id"]]
    assert "limit_reached" not in rest["summary"]


def test_an_amount_mismatch_needs_a_person_and_changes_nothing(shop, standin, customer_user):
    order, session_id = shop.opened(customer_user, VariantFactory(stock=1, price="40.00"))
    standin.pay(session_id)
    RepairOrder.objects.filter(pk=order["id"]).update(total_amount="41.00")

    code, document = invoke_json("reconcile")

    assert code == 1
    assert by_kind(document, "pending_paid") == (1, 0, 1)
    assert "amount mismatch" in document["items"][0]["outcome"]
    assert status_of(order) == "pending"


# --- Invoices not sent --------------------------------------------------------------------------


def paid_long_ago(entry: str = "pending", **invoice: object) -> RepairOrder:
    """A paid order (on the dummy gateway: nothing to ask the provider) paid an hour ago, its
    invoice owed since then (its outbox entry in ``entry``'s status), with an invoice in the
    given state, or none."""
    order = new_order()
    an_hour_ago = timezone.now() - timedelta(hours=1)
    RepairOrder.objects.filter(pk=order.pk).update(status="paid", paid_at=an_hour_ago)
    outbox_write(kind="invoice", subject_id=order.pk, wake=False)
    OutboxEntry.objects.filter(subject_id=str(order.pk)).update(due_at=an_hour_ago, status=entry)
    if invoice:
        Invoice.objects.create(order=order, number=f"ML-TEST-{order.pk.hex[:8]}", **invoice)
    return RepairOrder.objects.get(pk=order.pk)


# Transactional: reconcile sends each invoice once its decision commits, as in production.
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("dummy_gateway")
def test_an_invoice_no_drainer_ran_is_sent_by_reconcile_once(mailoutbox):
    order = paid_long_ago()  # owed an hour ago; no consumer ran its drainer

    code, dry = invoke_json("reconcile", "--dry-run")
    assert code == 0
    assert found(dry) == [(str(order.pk), "invoice_not_sent", "paid", "paid")]
    assert mailoutbox == []  # a dry run sends nothing

    code, document = invoke_json("reconcile")

    assert code == 0
    assert found(document) == [(str(order.pk), "invoice_not_sent", "paid", "processing")]
    assert [m.to for m in mailoutbox] == [[order.customer_email]]
    assert Invoice.objects.get(order=order).status == InvoiceStatus.SENT
    code, again = invoke_json("reconcile")
    assert (code, nothing_found(again), len(mailoutbox)) == (0, True, 1)


@pytest.mark.usefixtures("dummy_gateway")
def test_an_invoice_failed_for_good_needs_a_person(mailoutbox, django_capture_on_commit_callbacks):
    order = paid_long_ago(
        entry="failed",
        status=InvoiceStatus.FAILED,
        attempts=9,
        last_error="SMTPException: 451 down",
    )

    with django_capture_on_commit_callbacks(execute=True):
        code, document = invoke_json("reconcile")

    assert code == 1
    assert by_kind(document, "invoice_not_sent") == (1, 0, 1)
    assert "451 down" in document["items"][0]["outcome"]
    assert mailoutbox == []
    # The cause fixed, the operator sends it.
    with django_capture_on_commit_callbacks(execute=True):
        code, _ = invoke_json("invoices", "resend", str(order.pk))
    assert code == 0
    assert Invoice.objects.get(order=order).status == InvoiceStatus.SENT
    assert len(mailoutbox) == 1
