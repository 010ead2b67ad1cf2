"""Every marketlink model has an admin page staff can open, search and filter."""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from marketlink.catalog.models import ServiceVariant
from marketlink.orders.services import order_place
from marketlink.payments.checkout import checkout_open
from marketlink.payments.gateways.dummy import session_event
from marketlink.payments.models import DummyCheckoutSession, EventStatus, PaymentEvent
from marketlink.payments.webhooks import webhook_receive
from marketlink.testing.factories import AccountFactory, VariantFactory, VendorProfileFactory
from marketlink.vendors.models import VendorProfile

pytestmark = pytest.mark.django_db

MARKETLINK_MODELS = [
    model for model in admin.site._registry if model._meta.app_label.startswith("marketlink_")
]


@pytest.fixture
def staff_client() -> Client:
    user_model = get_user_model()
    user = user_model(is_staff=True, is_superuser=True)
    setattr(user, user_model.USERNAME_FIELD, "root@example.com")
    setattr(user, user_model.get_email_field_name(), "root@example.com")
    user.set_password("pw")
    user.save()
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def paid_order():
    account = AccountFactory()
    order, _ = order_place(
        customer=account.user, customer_email=account.email, variant_id=VariantFactory().id
    )
    checkout_open(order=order, base_url="http://testserver/")
    session = DummyCheckoutSession.objects.get(order=order)
    session.status, session.payment_status = "complete", "paid"
    session.save()
    payload, signature = session_event(session, "checkout.session.completed")
    webhook_receive(payload=payload, signature=signature)
    return order


def test_every_model_is_registered():
    labels = {m._meta.label for m in MARKETLINK_MODELS}
    assert {
        "marketlink_accounts.Account",
        "marketlink_vendors.VendorProfile",
        "marketlink_catalog.Service",
        "marketlink_catalog.ServiceVariant",
        "marketlink_orders.RepairOrder",
        "marketlink_payments.PaymentEvent",
        "marketlink_payments.Invoice",
    } <= labels


@pytest.mark.parametrize("model", MARKETLINK_MODELS, ids=lambda m: m._meta.label)
def test_changelists_open_with_search_and_filters(staff_client, paid_order, model):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert staff_client.get(url).status_code == 200
    assert staff_client.get(url, {"q": "garage"}).status_code == 200


def test_order_page_shows_history_and_payments(staff_client, paid_order):
    url = reverse("admin:marketlink_orders_repairorder_change", args=[paid_order.pk])
    page = staff_client.get(url)
    assert page.status_code == 200
    content = page.content.decode()
    assert "checkout.session.completed" in content  # its payment events
    assert "webhook" in content  # its history, with the source of each change


def test_process_again_action(staff_client, paid_order):
    failed = PaymentEvent.objects.create(
        event_id="evt_failed_once",
        gateway="dummy",
        event_type="checkout.session.completed",
        order=paid_order,
        payload=PaymentEvent.objects.get(order=paid_order).payload,
        status=EventStatus.FAILED,
        last_error="transient: database unavailable",
    )
    url = reverse("admin:marketlink_payments_paymentevent_changelist")
    response = staff_client.post(
        url, {"action": "process_again", "_selected_action": [failed.pk]}, follow=True
    )
    assert response.status_code == 200
    failed.refresh_from_db()
    assert failed.status == EventStatus.PROCESSED
    assert failed.result == "already paid"


# --- Staff editing a variant during bookings neither loses nor invents units -------------------


class _FormFields(HTMLParser):
    """The values a browser would submit from the admin change form as rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in {"submit", "checkbox", "file"}:
            self.data[name] = a.get("value", "")
        elif tag == "input" and name and a.get("type") == "checkbox" and "checked" in a:
            self.data[name] = a.get("value", "on")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data.strip("\n")


def _form_as_rendered(client: Client, url: str) -> dict[str, str]:
    page = client.get(url)
    assert page.status_code == 200
    parser = _FormFields()
    parser.feed(page.content.decode())
    parser.data.pop("csrfmiddlewaretoken", None)
    return parser.data


def _book(variant: ServiceVariant) -> None:
    account = AccountFactory()
    order_place(customer=account.user, customer_email=account.email, variant_id=variant.id)


def test_a_price_edit_during_bookings_keeps_the_stock_they_took(staff_client):
    variant = VariantFactory(stock=5)
    url = reverse("admin:marketlink_catalog_servicevariant_change", args=[variant.pk])
    form = _form_as_rendered(staff_client, url)
    _book(variant)  # while the page is open

    form["price"] = "35.00"
    response = staff_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    variant.refresh_from_db()
    assert (variant.price, variant.stock) == (Decimal("35.00"), 4)


def test_a_restock_in_the_admin_during_bookings_adds_what_staff_added(staff_client):
    variant = VariantFactory(stock=5)
    url = reverse("admin:marketlink_catalog_servicevariant_change", args=[variant.pk])
    form = _form_as_rendered(staff_client, url)
    _book(variant)
    _book(variant)

    form["stock"] = "8"  # staff saw 5 and added 3
    assert staff_client.post(url, form).status_code == 302

    variant.refresh_from_db()
    assert variant.stock == 6


def test_a_variant_edited_inline_on_its_service_keeps_the_stock_bookings_took(staff_client):
    variant = VariantFactory(stock=5)
    url = reverse("admin:marketlink_catalog_service_change", args=[variant.service_id])
    form = _form_as_rendered(staff_client, url)
    _book(variant)

    [name_key] = [k for k, v in form.items() if k.endswith("-name") and v == variant.name]
    form[name_key] = "Renamed"
    assert staff_client.post(url, form).status_code == 302

    variant.refresh_from_db()
    assert (variant.name, variant.stock) == ("Renamed", 4)


# --- Staff get a form error, not a 500, for a price Stripe could not charge --------------------


def _price_errors(page) -> list[str]:
    """The errors shown next to the price on an admin page that was sent back to staff."""
    assert page.status_code == 200, page.status_code
    return list(page.context["adminform"].form.errors.get("price", []))


@pytest.mark.parametrize(
    ("currency", "price", "message"),
    [
        ("jpy", "10.50", "price must be a whole number in JPY, which has no minor unit"),
        ("usd", "1000000.00", "price must be at most 999999.99 USD"),
        ("usd", "0.10", "price must be at least 0.50 USD"),
    ],
)
def test_adding_a_variant_in_the_admin_refuses_a_price_stripe_cannot_charge(
    staff_client, settings, currency, price, message
):
    settings.MARKETLINK = {"CURRENCY": currency}
    service = VariantFactory().service
    url = reverse("admin:marketlink_catalog_servicevariant_add")
    form = _form_as_rendered(staff_client, url)
    form.update(service=str(service.pk), name="Odd", price=price, estimated_minutes="10", stock="1")

    page = staff_client.post(url, form)

    assert _price_errors(page) == [message]
    assert not ServiceVariant.objects.filter(name="Odd").exists()


def test_editing_a_variant_in_the_admin_with_a_bad_price_shows_a_form_error(staff_client, settings):
    settings.MARKETLINK = {"CURRENCY": "jpy"}
    variant = VariantFactory(price=Decimal("1500"))
    url = reverse("admin:marketlink_catalog_servicevariant_change", args=[variant.pk])
    form = _form_as_rendered(staff_client, url)
    form["price"] = "10.50"

    page = staff_client.post(url, form)

    assert _price_errors(page) == ["price must be a whole number in JPY, which has no minor unit"]
    variant.refresh_from_db()
    assert variant.price == Decimal("1500")


def test_a_variant_added_inline_on_its_service_is_refused_a_bad_price(staff_client, settings):
    settings.MARKETLINK = {"CURRENCY": "jpy"}
    service = VariantFactory(price=Decimal("1500")).service
    url = reverse("admin:marketlink_catalog_service_change", args=[service.pk])
    form = _form_as_rendered(staff_client, url)
    prefix = "variants"
    total = int(form[f"{prefix}-TOTAL_FORMS"])
    form.update(
        {
            f"{prefix}-TOTAL_FORMS": str(total + 1),
            f"{prefix}-{total}-service": str(service.pk),
            f"{prefix}-{total}-name": "Odd",
            f"{prefix}-{total}-price": "10.50",
            f"{prefix}-{total}-estimated_minutes": "10",
            f"{prefix}-{total}-stock": "1",
            f"initial-{prefix}-{total}-stock": "",
        }
    )

    page = staff_client.post(url, form)

    assert page.status_code == 200
    [inline] = page.context["inline_admin_formsets"]
    assert inline.formset.forms[total].errors["price"] == [
        "price must be a whole number in JPY, which has no minor unit"
    ]
    assert not ServiceVariant.objects.filter(name="Odd").exists()


# --- Staff suspend vendors ----------------------------------------------------------------------


def test_staff_suspend_and_lift_vendors_with_the_admin_actions(staff_client):
    vendors = [VendorProfileFactory(), VendorProfileFactory()]
    url = reverse("admin:marketlink_vendors_vendorprofile_changelist")
    selected = [str(v.pk) for v in vendors]

    staff_client.post(url, {"action": "suspend", "_selected_action": selected}, follow=True)
    assert all(v.suspended and v.suspended_at for v in VendorProfile.objects.all())

    staff_client.post(url, {"action": "reinstate", "_selected_action": selected}, follow=True)
    lifted = VendorProfile.objects.filter(suspended=False, suspended_at__isnull=True)
    assert lifted.count() == 2


def test_staff_suspend_a_vendor_on_its_page_with_a_reason(staff_client):
    vendor = VendorProfileFactory()
    url = reverse("admin:marketlink_vendors_vendorprofile_change", args=[vendor.pk])
    form = _form_as_rendered(staff_client, url)
    form["suspended"] = "on"
    form["suspension_reason"] = "Chargebacks under review"

    assert staff_client.post(url, form).status_code == 302
    vendor.refresh_from_db()
    assert (vendor.suspended, vendor.suspension_reason) == (True, "Chargebacks under review")
    assert vendor.suspended_at is not None

    form = _form_as_rendered(staff_client, url)
    form.pop("suspended")  # unticked
    assert staff_client.post(url, form).status_code == 302
    vendor.refresh_from_db()
    assert (vendor.suspended, vendor.suspended_at) == (False, None)
