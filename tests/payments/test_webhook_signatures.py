"""The ``Stripe-Signature`` check on both gateways, at the edges the pipeline tests do not reach:
bodies that are not ASCII, an endpoint secret left empty, headers that are not ASCII.

These run on whatever ``stripe`` release is installed, and the ``tests_lowest`` nox session runs
them on the lowest one ``pyproject.toml`` allows: a release that verifies the wrong bytes would
refuse the genuine events here, or take the forged ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from django.test import Client
from payment_events import WEBHOOK, checkout_session, deliver, event

from marketlink.orders.models import RepairOrder
from marketlink.orders.services import order_place
from marketlink.payments.gateways import dummy, signatures
from marketlink.payments.gateways.base import InvalidSignature
from marketlink.payments.gateways.stripe import StripeGateway
from marketlink.payments.models import PaymentEvent
from marketlink.testing.factories import AccountFactory, VariantFactory

pytestmark = pytest.mark.django_db

STRIPE_SECRET = "whsec_signature_tests"


def use_stripe(settings: Any, webhook_secret: str = STRIPE_SECRET) -> None:
    settings.MARKETLINK = {
        "PAYMENT_GATEWAY": "stripe",
        "STRIPE_SECRET_KEY": "sk_test_signature_tests",
        "STRIPE_WEBHOOK_SECRET": webhook_secret,
    }


@pytest.fixture
def order() -> RepairOrder:
    account = AccountFactory()
    placed, _ = order_place(
        customer=account.user, customer_email=account.email, variant_id=VariantFactory().id
    )
    return placed


def completed_body(order: RepairOrder) -> bytes:
    """A completed-checkout event as Stripe sends it: UTF-8 JSON, non-ASCII text left as is."""
    session = checkout_session(order, customer_details={"name": "Zoë Ångström-Müller"})
    return json.dumps(event("checkout.session.completed", session), ensure_ascii=False).encode()


def header(secret: str, signed_text: bytes, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` over ``signed_text`` (normally ``b"<t>." + body``)."""
    t = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{t}.".encode() + signed_text, hashlib.sha256)
    return f"t={t},v1={digest.hexdigest()}"


def post(body: bytes, signature: str) -> Any:
    return Client().post(
        WEBHOOK, body, content_type="application/json", headers={"Stripe-Signature": signature}
    )


def assert_refused(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    answer: dict[str, Any] = response.json()
    assert answer["success"] is False
    assert answer["data"] is None
    assert answer["message"]
    assert PaymentEvent.objects.count() == 0
    return answer


def test_a_genuine_stripe_event_with_non_ascii_text_is_accepted_and_pays_the_order(
    settings, order, django_capture_on_commit_callbacks
):
    use_stripe(settings)
    body = completed_body(order)
    with django_capture_on_commit_callbacks(execute=True):
        response = post(body, header(STRIPE_SECRET, body))
    assert response.status_code == 200, response.content
    assert response.json()["data"]["status"] == "processed"
    assert RepairOrder.objects.get(pk=order.pk).status != "pending"


# What a forger signs with the empty key: Stripe's own scheme, and the text that stripe-python
# releases before 15.6 verified when handed bytes (``"<t>.b'<body>'"``).
FORGERIES = {
    "over the body": lambda body: body,
    "over the body's bytes repr": lambda body: repr(body).encode(),
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_with_an_empty_endpoint_secret_an_event_forged_with_the_empty_key_is_refused(
    settings, order, forgery
):
    use_stripe(settings, webhook_secret="")
    body = completed_body(order)
    assert_refused(post(body, header("", FORGERIES[forgery](body))))
    assert RepairOrder.objects.get(pk=order.pk).status == "pending"


@pytest.mark.parametrize("secret", ["", "  \n"])
def test_the_stripe_gateway_refuses_to_verify_with_an_empty_endpoint_secret(
    settings, order, secret
):
    use_stripe(settings, webhook_secret=secret)
    body = completed_body(order)
    with pytest.raises(InvalidSignature, match="STRIPE_WEBHOOK_SECRET"):
        StripeGateway().verify_event(body, header(secret, body))


def test_a_stripe_body_that_is_not_utf8_is_400(settings):
    use_stripe(settings)
    body = b'{"id": "evt_latin1", "note": "caf\xe9"}'
    answer = assert_refused(post(body, header(STRIPE_SECRET, body)))
    assert "UTF-8" in answer["message"]


@pytest.mark.parametrize("gateway", ["dummy", "stripe"])
@pytest.mark.parametrize("signature", ["t=1,v1=é", "t=1,v1=\u20ac" + "0" * 63])
def test_a_signature_header_that_is_not_ascii_is_400_in_the_envelope(
    settings, order, gateway, signature
):
    if gateway == "stripe":
        use_stripe(settings)
    else:
        settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    assert_refused(post(completed_body(order), signature))


def test_the_dummy_gateway_still_takes_its_own_events_with_non_ascii_text(
    settings, order, django_capture_on_commit_callbacks
):
    settings.MARKETLINK = {"PAYMENT_GATEWAY": "dummy"}
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(Client(), completed_body(order), dummy.webhook_secret())
    assert response.status_code == 200, response.content


def test_the_shared_signature_scheme_refuses_to_verify_with_an_empty_secret():
    payload = b'{"id": "evt_empty_key"}'
    assert signatures.verify(payload, signatures.sign(payload, ""), "", 300) is not None
    assert signatures.verify(payload, signatures.sign(payload, "k"), "k", 300) is None
