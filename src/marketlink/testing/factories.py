"""factory-boy factories for marketlink's models, for any ``AUTH_USER_MODEL``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import factory
from django.conf import settings

from marketlink.accounts.models import Account, Role
from marketlink.catalog.models import Service, ServiceVariant
from marketlink.vendors.models import VendorProfile

DEFAULT_PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    """A user of the host's model; its username (if it has one) is its email."""

    class Meta:
        model = settings.AUTH_USER_MODEL

    email = factory.Sequence(lambda n: f"user{n}@example.com")

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        password = kwargs.pop("password", DEFAULT_PASSWORD)
        email = kwargs.pop("email")
        user = model_class(**kwargs)
        setattr(user, model_class.get_email_field_name(), email)
        setattr(user, model_class.USERNAME_FIELD, email)
        user.set_password(password)
        user.save()
        return user


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    user = factory.SubFactory(UserFactory)
    role = Role.CUSTOMER
    email = factory.LazyAttribute(lambda account: account.user.email.lower())


class VendorProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = VendorProfile

    user = factory.LazyFunction(lambda: AccountFactory(role=Role.VENDOR).user)
    business_name = factory.Sequence(lambda n: f"Garage {n}")
    address = factory.Sequence(lambda n: f"{n} Main Street")


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service

    vendor = factory.SubFactory(VendorProfileFactory)
    name = factory.Sequence(lambda n: f"Service {n}")
    description = "A service."


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceVariant

    service = factory.SubFactory(ServiceFactory)
    name = factory.Sequence(lambda n: f"Variant {n}")
    price = Decimal("29.99")
    estimated_minutes = 30
    stock = 5
