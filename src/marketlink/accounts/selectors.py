"""Reads about users and their marketplace roles."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from marketlink.accounts.models import Account, Role


def account_for_user(user: Any) -> Account:
    """The user's account, created on first sight for users the host made itself.

    A superuser from ``createsuperuser`` or a user imported by the host has no account yet; it
    gets one the first time marketlink meets it, as ADMIN when staff, else CUSTOMER.
    """
    try:
        return user.marketlink_account  # type: ignore[no-any-return]
    except Account.DoesNotExist:
        pass
    email = (getattr(user, user.get_email_field_name(), "") or "").lower()
    role = Role.ADMIN if user.is_staff or user.is_superuser else Role.CUSTOMER
    try:
        with transaction.atomic():
            account = Account.objects.create(
                user=user, role=role, email=email or f"{user.pk}@invalid"
            )
    except IntegrityError:
        account = Account.objects.get(user=user)
    user.marketlink_account = account
    return account


def user_by_email(email: str) -> Any | None:
    """The user who logs in with ``email`` (case-insensitive), or None."""
    account = Account.objects.select_related("user").filter(email=email.lower()).first()
    if account is not None:
        return account.user
    user_model = get_user_model()
    field = user_model.get_email_field_name()
    return user_model._default_manager.filter(**{f"{field}__iexact": email}).order_by("pk").first()


def active_user_by_pk(pk: Any) -> Any | None:
    user_model = get_user_model()
    return (
        user_model._default_manager.select_related("marketlink_account")
        .filter(pk=pk, is_active=True)
        .first()
    )
