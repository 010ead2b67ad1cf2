"""Demo data for the example site and for operators trying marketlink out."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from marketlink.accounts.models import Account, Role
from marketlink.accounts.services import user_register
from marketlink.catalog.models import Service
from marketlink.catalog.services import service_create, variant_create
from marketlink.vendors.models import VendorProfile
from marketlink.vendors.services import vendor_profile_create

CATALOGUE = [
    (
        "Oil change",
        "Engine oil and filter.",
        [("Basic", "29.99", 20, 5), ("Synthetic", "59.99", 30, 3)],
    ),
    (
        "Brake service",
        "Pads, discs and fluid check.",
        [("Pads", "89.00", 60, 4), ("Full", "199.00", 120, 2)],
    ),
    ("Tyre fitting", "Fit and balance four tyres.", [("Standard", "40.00", 45, 10)]),
]


def _account(email: str, password: str, role: str) -> Account:
    existing = Account.objects.filter(email=email).first()
    return existing or user_register(email=email, password=password, role=role)


@transaction.atomic
def seed_demo(*, vendors: int = 3, password: str = "demo-pass-123") -> list[str]:
    lines = []
    customer = _account("customer@example.com", password, Role.CUSTOMER)
    lines.append(f"customer  {customer.email} / {password}")
    for number in range(1, vendors + 1):
        account = _account(f"vendor{number}@example.com", password, Role.VENDOR)
        profile = VendorProfile.objects.filter(user=account.user).first() or vendor_profile_create(
            user=account.user, business_name=f"Garage {number}", address=f"{number} Main Street"
        )
        lines.append(f"vendor    {account.email} / {password}  ({profile.business_name})")
        if Service.objects.filter(vendor=profile).exists():
            continue
        for name, description, variants in CATALOGUE:
            service = service_create(vendor=profile, name=name, description=description)
            for variant_name, price, minutes, stock in variants:
                variant_create(
                    service=service,
                    name=variant_name,
                    price=Decimal(price),
                    estimated_minutes=minutes,
                    stock=stock,
                )
    return lines
