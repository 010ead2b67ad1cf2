"""Reads about users and their marketplace roles."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError

from marketlink.accounts.models import Account


def user_by_email(email: str) -> Any | None:
    """The user who logs in with ``email`` (case-insensitive), or None."""
    account = Account.objects.select_related("user").filter(email=email.lower()).first()
    if account is not None:
        return account.user
    user_model = get_user_model()
    field = user_model.get_email_field_name()
    return user_model._default_manager.filter(**{f"{field}__iexact": email}).order_by("pk").first()


def active_user_by_pk(pk: Any) -> Any | None:
    """The active user whose primary key a token names; None for a key of the wrong type too."""
    user_model = get_user_model()
    try:
        pk = user_model._meta.pk.to_python(pk)
    except (DjangoValidationError, TypeError, ValueError):
        return None
    found = user_model._default_manager.select_related("marketlink_account").filter(
        pk=pk, is_active=True
    )
    return next(iter(found.order_by()[:1]), None)


def account_of(user: Any) -> Account:
    """The user's account read afresh from the database, with the user: for answers that show a
    person their own data (the authenticated user object may be a few seconds old). Every
    authenticated user has one: :class:`~marketlink.accounts.auth.JWTAuth` makes it."""
    return Account.objects.select_related("user").get(user_id=user.pk)
