"""``marketlink seed``: the same seed gives the same demo, every order status is there (made
through the real services), a rerun adds nothing, and the logins work."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from cli_runner import migrated_site, run_console_script
from django.contrib.auth import get_user_model
from django.utils import timezone
from typer.testing import CliRunner

from marketlink.accounts.models import Account
from marketlink.catalog.models import Service, ServiceVariant
from marketlink.cli import app
from marketlink.orders.models import OrderStatus, RepairOrder
from marketlink.payments.models import Invoice
from marketlink.vendors.models import VendorProfile

runner = CliRunner()


def seed(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["seed", "--json", *args], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def catalogue() -> list[tuple[str, str, str, str, int]]:
    return sorted(
        ServiceVariant.objects.values_list(
            "service__vendor__business_name", "service__name", "name", "price", "stock"
        )
    )


def names() -> list[tuple[str, str, str]]:
    return sorted(Account.objects.values_list("email", "user__first_name", "user__last_name"))


def forget_everything() -> None:
    """An empty site again (no orders were made): the next seed starts from scratch."""
    ServiceVariant.objects.all().delete()
    Service.objects.all().delete()
    VendorProfile.objects.all().delete()
    get_user_model().objects.all().delete()


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_demo_and_another_seed_another():
    assert seed("--seed", "7", "--orders", "0")[0] == 0
    first = (catalogue(), names())
    forget_everything()
    assert seed("--seed", "7", "--orders", "0")[0] == 0
    assert (catalogue(), names()) == first
    forget_everything()
    assert seed("--seed", "8", "--orders", "0")[0] == 0
    assert catalogue() != first[0]


@pytest.mark.django_db(transaction=True)
def test_orders_in_every_status_and_a_rerun_adds_nothing(api, tasks_run_inline):
    code, document = seed("--vendors", "2", "--customers", "2", "--orders", "7")
    assert code == 0
    assert document["summary"] | {"notes": []} == {
        "vendors_created": 2,
        "customers_created": 2,
        "variants_created": 10,
        "orders_created": 7,
        "dry_run": False,
        "exit_code": 0,
        "notes": [],
    }
    statuses = Counter(RepairOrder.objects.values_list("status", flat=True))
    assert statuses == Counter(OrderStatus.values)
    # The paid one stays paid: its invoice task was held back (tasks run inline here).
    paid = RepairOrder.objects.get(status=OrderStatus.PAID)
    assert not Invoice.objects.filter(order=paid).exists()
    pending = RepairOrder.objects.get(status=OrderStatus.PENDING)
    assert pending.expires_at > timezone.now() + timedelta(days=29)
    assert Invoice.objects.filter(status="sent").count() == 3  # processing, completed, refunded

    again = runner.invoke(
        app, ["seed", "--vendors", "2", "--customers", "2", "--orders", "7"], catch_exceptions=False
    )
    assert again.exit_code == 0
    assert "orders created" in again.stdout
    for login in ("customer@example.com", "vendor1@example.com", "demo-pass-123"):
        assert login in again.stdout
    assert Counter(RepairOrder.objects.values_list("status", flat=True)) == statuses
    assert (
        seed("--vendors", "2", "--customers", "2", "--orders", "7")[1]["summary"]["orders_created"]
        == 0
    )

    for email in ("customer@example.com", "vendor1@example.com"):
        login = api.post("/users/login/", {"email": email, "password": "demo-pass-123"})
        assert login.status_code == 200, login.content


@pytest.mark.django_db
def test_demo_orders_need_the_dummy_gateway(settings):
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "stripe", "STRIPE_SECRET_KEY": "sk_test_x"}
    result = runner.invoke(app, ["seed"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "--orders 0" in result.stderr
    assert seed("--orders", "0")[0] == 0


def test_the_console_script_seeds_a_migrated_site_and_doctor_finds_it_healthy(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    embedded = {"REDIS_URL": ""}  # the embedded default, whatever this run's environment has
    migrated_site(url, embedded)
    seeded = run_console_script("seed", "--json", database_url=url, env=embedded, timeout=300)
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads(seeded.stdout)["summary"]["orders_created"] == 14
    checked = run_console_script("doctor", database_url=url, env=embedded)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Summary:" in checked.stdout


@pytest.mark.django_db(transaction=True)
def test_with_payouts_on_the_vendors_onboard_and_the_completed_orders_are_paid_out(
    api, tasks_run_inline, settings
):
    """What the demo shows: each vendor onboarded (the dummy's instant onboarding), an order
    completed, and its transfer on the vendor's payout page."""
    settings.MARKETLINK = {"PAYOUTS_ENABLED": True, "PLATFORM_FEE_PERCENT": "10"}
    assert seed("--orders", "4")[0] == 0

    assert set(VendorProfile.objects.values_list("payouts_ready", flat=True)) == {True}
    completed = RepairOrder.objects.get(status=OrderStatus.COMPLETED)
    vendor = completed.vendor.user
    page = api.get("/vendors/payouts/", user=vendor).json()["data"]
    assert page["account"]["ready"] is True
    assert page["balance"]["released"] == str(completed.vendor_share)
    seen = api.get(f"/orders/{completed.pk}/", user=vendor).json()["data"]["payout"]
    assert seen["status"] == "released"
    assert seen["transfer_id"].startswith("tr_dummy_")
