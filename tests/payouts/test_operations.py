"""The operator's side of payouts: ``marketlink payouts list|release`` (a dry run reads and says
what it would send), reconcile recording a transfer the ledger lacks, doctor's findings, and the
admin's actions (a dashboard partial refund charged to the vendor, a debt settled by hand)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from cli_runner import invoke, invoke_json
from payout_helpers import ledger_sum

from marketlink.outbox.models import OutboxEntry
from marketlink.payments.gateways.base import TransferRequest, transfer_group
from marketlink.payments.gateways.stripe import StripeGateway
from marketlink.payouts.models import Payout, PayoutEntry
from marketlink.testing.factories import ServiceFactory, VendorProfileFactory

pytestmark = pytest.mark.django_db


def completed_unreleased(market, vendor, order=None):
    """A completed order whose release never ran (its consumer down): the row is waiting."""
    order = order or market.processing(vendor)
    with market.shop.on_commit(execute=False):  # the wake is lost
        market.api.post(f"/orders/{order['id']}/complete/", user=vendor.user)
    return order


def test_release_due_makes_the_owed_transfers_itself_after_a_dry_run(market, settings):
    vendor = market.vendor()
    waiting, never_owed = market.processing(vendor), market.processing(vendor)
    completed_unreleased(market, vendor, waiting)
    settings.MARKETLINK = {**settings.MARKETLINK, "PAYOUTS_ENABLED": False}
    completed_unreleased(market, vendor, never_owed)  # payouts off a while: no release row
    settings.MARKETLINK = {**settings.MARKETLINK, "PAYOUTS_ENABLED": True}

    code, dry = invoke_json("payouts", "release", "--due", "--dry-run")

    assert code == 0, dry
    assert dry["summary"]["dry_run"] is True
    account = vendor.connected_account.account_id
    assert {item["outcome"] for item in dry["items"]} == {f"would send 26.99 USD to {account}"}
    assert market.standin.transfers == {}
    assert (market.payout(waiting).status, market.payout(never_owed).status) == ("due", "held")

    code, done = invoke_json("payouts", "release", "--due")

    assert code == 0, done
    assert done["summary"]["released"] == 2
    assert len(market.transfers_of(waiting)) == len(market.transfers_of(never_owed)) == 1
    code, again = invoke_json("payouts", "release", "--due")
    assert (code, again["summary"]["asked"]) == (0, 0)
    code, listed = invoke_json("payouts", "list", "--status", "released")
    assert {item["order"] for item in listed["items"]} == {waiting["id"], never_owed["id"]}
    assert invoke("payouts", "release").exit_code == 2  # neither ORDER_IDs nor --due


def test_reconcile_records_a_transfer_the_ledger_lacks_and_makes_no_other(market):
    """The worker died after Stripe made the transfer and before the ledger's write."""
    vendor = market.vendor()
    order = completed_unreleased(market, vendor)
    assert market.payout(order).status == "due"
    row = OutboxEntry.objects.get(kind="payout_release", subject_id=order["id"])
    OutboxEntry.objects.filter(pk=row.pk).update(status="running")  # its drainer is dead
    StripeGateway().create_transfer(
        TransferRequest(2699, "usd", vendor.connected_account.account_id,
                        transfer_group(order["id"]), None, order["id"], f"marketlink-{row.pk}-1")
    )  # fmt: skip

    code, dry = invoke_json("reconcile", "--dry-run")
    assert (code, dry["summary"]["by_kind"]["transfer_unrecorded"]["fixed"]) == (0, 1)
    assert market.payout(order).status == "due"
    code, done = invoke_json("reconcile")

    assert code == 0, done
    assert done["summary"]["by_kind"]["transfer_unrecorded"]["fixed"] == 1
    assert market.payout(order).status == "released"
    assert len(market.transfers_of(order)) == 1
    assert ledger_sum(vendor) == 0
    assert invoke_json("reconcile")[1]["summary"]["fixed"] == 0  # a second run finds nothing


def test_doctor_lists_vendors_who_cannot_be_booked_and_flagged_payouts(market):
    ServiceFactory(vendor=VendorProfileFactory(business_name="Gated Garage"))
    vendor = market.vendor()
    order = market.processing(vendor)
    market.complete(order)
    market.standin.pay_out(vendor.connected_account.account_id)
    market.refund(order)  # refused reversal: a debt

    result = invoke("doctor", "--json")
    found = {item["check"]: item for item in json.loads(result.stdout)["items"]}

    assert found["payouts"]["status"] == "warn"
    assert "Gated Garage" in found["payouts"]["detail"]
    assert "1 debt(s)" in found["payouts"]["detail"]
    assert found["connect webhook secret"]["status"] == "ok"


def test_staff_charge_a_dashboard_partial_refund_and_settle_a_debt(market, admin_client):
    vendor = market.vendor()
    order = market.processing(vendor)
    market.complete(order)
    intent = market.payout(order).order.payment_intent_id
    market.standin.refund(intent, 1000)  # 10.00 given back in Stripe's dashboard
    market.deliver()
    payout = market.payout(order)
    changelist = "/admin/marketlink_payouts/payout/"

    admin_client.post(changelist, {"action": "reverse_part", "_selected_action": [payout.pk]})
    market.deliver()

    (transfer,) = market.transfers_of(order)
    assert transfer["amount_reversed"] == 1000
    assert ledger_sum(vendor) == 0

    market.standin.pay_out(vendor.connected_account.account_id)
    market.refund(order)  # the rest, 19.99: its reversal of 16.99 is refused
    assert market.payout(order).debt == Decimal("16.99")
    answer = admin_client.post(
        changelist, {"action": "settle_debt", "_selected_action": [payout.pk]}
    )
    form = answer["Location"]
    assert "amount=16.99" in form
    settle = {"vendor": vendor.pk, "order": order["id"], "note": "paid back by bank transfer"}
    refused = admin_client.post(form, {**settle, "amount": "20.00"})  # more than is owed
    assert "The vendor owes 16.99" in refused.content.decode()
    admin_client.post(form, {**settle, "amount": "16.99"})

    adjustment = PayoutEntry.objects.get(kind="adjustment")
    assert (adjustment.amount, adjustment.note) == (Decimal("16.99"), "paid back by bank transfer")
    assert Payout.objects.get(pk=payout.pk).debt == 0
    assert ledger_sum(vendor) == 0
