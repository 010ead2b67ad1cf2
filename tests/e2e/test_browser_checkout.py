"""The whole payment flow in a real browser: book over HTTP, pay on the dummy gateway's page.

Headless Chromium (Debian's ``chromium`` and ``chromium-driver``), driven by Selenium, against
the example site under gunicorn on the test database and the embedded default (no Redis, Huey
in immediate mode). What a customer does, end to end: open ``payment_url``, land on the dummy
checkout page, press Pay or Decline, arrive at the success or cancel page. What marketlink must
have done meanwhile, checked in the database: the signed event stored and processed, the order
moved by the webhook and then by the invoice task, the invoice sent.

Without Chromium, chromedriver or Selenium the tests skip, saying what is missing; with
``CI=true`` they fail instead, so CI never goes green by skipping them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, urlsplit

import pytest
from live_site import site_env, start_gunicorn, stop
from order_helpers import history

from marketlink.accounts.services import tokens_issue
from marketlink.catalog.models import ServiceVariant
from marketlink.orders.models import RepairOrder
from marketlink.payments.models import DummyCheckoutSession, EventStatus, Invoice, PaymentEvent
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # The machines running this are offline: no update checks, sync or telemetry to fail noisily.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
WAIT = 30  # seconds for a page or a redirect


def _missing(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


# --- The browser and the site ------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium with a fresh profile, via chromedriver."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (it is in the `test` dependency group)")
    chromium = shutil.which("chromium")
    chromedriver = shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        missing = " and ".join(
            name
            for name, path in (("chromium", chromium), ("chromedriver", chromedriver))
            if path is None
        )
        _missing(f"{missing} not found: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    # Both paths given, so Selenium never runs Selenium Manager (which would try the network).
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


class Site:
    """The example site under gunicorn; ``output()`` is what it printed (emails included)."""

    def __init__(self, base_url: str, log: Path) -> None:
        self.base_url = base_url
        self.log = log

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def site(transactional_db: None, tmp_path: Path) -> Iterator[Site]:
    """The example site on the embedded default (no REDIS_URL: local-memory cache, Huey
    immediate, dummy gateway, console email backend) against the test database."""
    env = site_env(REDIS_URL=None, STRIPE_SECRET_KEY=None, EMAIL_BACKEND=None, PYTHONUNBUFFERED="1")
    log = tmp_path / "gunicorn.log"
    proc, url = start_gunicorn(env, threads=4, log=log)
    try:
        yield Site(url, log)
    finally:
        stop(proc)


# --- Steps ---------------------------------------------------------------------------------------


def book(site: Site, token: str, variant: ServiceVariant) -> dict[str, Any]:
    """``POST /api/orders/`` over real HTTP with a bearer token; the order it returns."""
    request = urllib.request.Request(
        f"{site.base_url}/api/orders/",
        data=json.dumps({"variant_id": str(variant.id)}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.status == 201
        body = json.loads(response.read())
    assert body["success"] is True
    order: dict[str, Any] = body["data"]
    assert order["status"] == "pending"
    assert order["payment_url"].startswith(f"{site.base_url}/api/payments/pay/")
    return order


def open_checkout(browser: Any, site: Site, order: dict[str, Any]) -> str:
    """Open the order's ``payment_url``; it redirects to the dummy gateway's page. Returns the
    checkout session's id, after checking the page shows what is being paid for."""
    from selenium.webdriver.common.by import By

    browser.get(order["payment_url"])
    path = urlsplit(browser.current_url).path
    assert path.startswith("/api/payments/dummy/cs_dummy_"), browser.current_url
    session_id = path.rstrip("/").rsplit("/", 1)[1]
    heading = browser.find_element(By.TAG_NAME, "h1").text
    assert heading == f"{order['vendor_name']}: {order['variant']['name']}"
    assert browser.find_element(By.ID, "amount").text == "40.00 USD"
    return session_id


def press(browser: Any, button: str, lands_on: str) -> dict[str, Any]:
    """Press a button of the checkout page and wait for the redirect to ``lands_on``; returns
    the JSON envelope the landing page shows."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.find_element(By.ID, button).click()
    WebDriverWait(browser, WAIT).until(expected_conditions.url_contains(lands_on))
    # Chromium shows a JSON answer as text inside <pre>.
    pre = WebDriverWait(browser, WAIT).until(
        expected_conditions.presence_of_element_located((By.TAG_NAME, "pre"))
    )
    envelope: dict[str, Any] = json.loads(pre.text)
    return envelope


# --- The tests -----------------------------------------------------------------------------------


@pytest.fixture
def customer_token() -> Callable[[], tuple[str, str]]:
    def make() -> tuple[str, str]:
        account = AccountFactory()
        return account.email, tokens_issue(user=account.user)["access"]

    return make


def test_pay_in_the_browser_ends_with_a_paid_order_and_an_invoice(
    browser: Any, site: Site, customer_token: Callable[[], tuple[str, str]]
) -> None:
    from selenium.webdriver.common.by import By

    email, token = customer_token()
    variant = VariantFactory(price=Decimal("40.00"), stock=3)
    order = book(site, token, variant)
    session_id = open_checkout(browser, site, order)

    landed = press(browser, "pay", f"/api/orders/{order['id']}/success/")

    # The success page: the webhook has been through before the redirect, and (Huey immediate)
    # so has the invoice task.
    assert parse_qs(urlsplit(browser.current_url).query) == {"session_id": [session_id]}
    assert landed["success"] is True
    assert landed["message"] == "Payment confirmed."
    assert landed["data"] == {
        "order_id": order["id"],
        "status": "processing",
        "provider_says_paid": True,
    }

    db_order = RepairOrder.objects.get(pk=order["id"])
    assert db_order.status == "processing"
    assert db_order.checkout_session_id == session_id
    assert (db_order.payment_intent_id or "").startswith("pi_dummy_")
    assert db_order.paid_at is not None
    assert history(order["id"]) == [
        ("pending", "paid", "webhook"),
        ("paid", "processing", "task"),
    ]
    event = PaymentEvent.objects.get(order=db_order)
    assert (event.gateway, event.event_type, event.status) == (
        "dummy",
        "checkout.session.completed",
        EventStatus.PROCESSED,
    )
    assert event.payload["data"]["object"]["amount_total"] == 4000
    assert not event.needs_attention
    invoice = Invoice.objects.get(order=db_order)
    assert invoice.sent_at is not None
    assert invoice.attempts == 1
    # The console email backend printed the invoice in the server's output.
    output = re.sub(r"\r?\n[ \t]+", " ", site.output())  # headers unfolded
    assert f"Subject: Invoice {invoice.number}" in output
    assert f"To: {email}" in output
    assert "40.00 USD" in output

    # The unit stays sold; the checkout page cannot be paid twice.
    variant.refresh_from_db()
    assert variant.stock == 2
    assert DummyCheckoutSession.objects.get(pk=session_id).status == "complete"
    browser.get(f"{site.base_url}/api/payments/dummy/{session_id}/")
    assert browser.find_element(By.ID, "state").text == "This checkout is complete."
    assert not browser.find_elements(By.ID, "pay")


def test_decline_in_the_browser_leaves_the_order_pending_and_payable(
    browser: Any, site: Site, customer_token: Callable[[], tuple[str, str]]
) -> None:
    _, token = customer_token()
    variant = VariantFactory(price=Decimal("40.00"), stock=3)
    order = book(site, token, variant)
    session_id = open_checkout(browser, site, order)

    landed = press(browser, "decline", f"/api/orders/{order['id']}/cancel/")

    assert landed["success"] is True
    assert landed["message"] == "Payment was not completed."
    assert landed["data"] == {
        "order_id": order["id"],
        "status": "pending",
        "provider_says_paid": False,
    }
    db_order = RepairOrder.objects.get(pk=order["id"])
    assert db_order.status == "pending"
    assert history(order["id"]) == []
    event = PaymentEvent.objects.get(order=db_order)
    assert (event.gateway, event.event_type, event.status) == (
        "dummy",
        "payment_intent.payment_failed",
        EventStatus.PROCESSED,
    )
    assert "declined" in event.result
    assert not Invoice.objects.filter(order=db_order).exists()
    variant.refresh_from_db()
    assert variant.stock == 2  # still reserved for this customer

    # A declined attempt is only recorded: the same link still pays while the reservation lasts.
    assert open_checkout(browser, site, order) == session_id
    landed = press(browser, "pay", f"/api/orders/{order['id']}/success/")
    assert landed["data"]["status"] == "processing"
    assert history(order["id"]) == [
        ("pending", "paid", "webhook"),
        ("paid", "processing", "task"),
    ]
