"""Writes for accounts: registration, login, tokens, profile."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction

from marketlink.accounts.models import Account, Role
from marketlink.accounts.selectors import account_for_user, active_user_by_pk, user_by_email
from marketlink.accounts.tokens import token_classes, user_id_claim
from marketlink.exceptions import FieldError, InvalidInput, NotAuthenticated, PermissionDenied

logger = logging.getLogger(__name__)

EMAIL_TAKEN = "a user with this email already exists"


def user_register(
    *, email: str, password: str, role: str, first_name: str = "", last_name: str = ""
) -> Account:
    """Create a user of the host's model and its marketplace account, atomically."""
    if role not in (Role.CUSTOMER, Role.VENDOR):
        raise InvalidInput.for_field("role", "role ADMIN cannot be self-registered")
    email = email.lower()
    user_model = get_user_model()
    user = user_model()
    username_field = user_model.USERNAME_FIELD
    email_field = user_model.get_email_field_name()
    setattr(user, email_field, email)
    if username_field != email_field:
        # The stock User logs in by username: the address is the natural unique username.
        max_length = getattr(user_model._meta.get_field(username_field), "max_length", None) or 150
        if len(email) > max_length:
            raise InvalidInput.for_field(
                "email", f"email must be at most {max_length} characters on this site"
            )
        setattr(user, username_field, email)
    for name, value in (("first_name", first_name), ("last_name", last_name)):
        if hasattr(user, name):
            setattr(user, name, value)
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as exc:
        messages = [str(m) for m in exc.messages]
        raise InvalidInput(
            "password: " + " ".join(messages),
            errors=[FieldError(("body", "password"), m) for m in messages],
        ) from None
    user.set_password(password)
    if user_by_email(email) is not None:
        raise InvalidInput.for_field("email", EMAIL_TAKEN)
    try:
        with transaction.atomic():
            user.save()
            account = Account.objects.create(user=user, role=role, email=email)
    except IntegrityError:
        # Lost a race with a concurrent registration of the same address.
        raise InvalidInput.for_field("email", EMAIL_TAKEN) from None
    logger.info("registered %s as %s", account.id, role)
    return account


def user_login(*, email: str, password: str) -> Account:
    user = user_by_email(email)
    if user is None:
        make_password(password)  # spend the hashing time anyway: no user enumeration by timing
        raise NotAuthenticated("Invalid email or password.")
    if not user.check_password(password):
        raise NotAuthenticated("Invalid email or password.")
    if not user.is_active:
        raise PermissionDenied("This account is inactive.")
    return account_for_user(user)


def tokens_issue(*, user: Any) -> dict[str, str]:
    _, refresh_class = token_classes()
    refresh = refresh_class.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


def _verified_refresh(token: str) -> Any:
    from ninja_jwt.exceptions import TokenError

    _, refresh_class = token_classes()
    try:
        return refresh_class(token)
    except TokenError:
        return None


def tokens_refresh(*, refresh: str) -> dict[str, str]:
    """Rotate: the presented refresh token is blacklisted and a new pair issued, once.

    The blacklist row is unique per token, so of two concurrent refreshes with the same token
    exactly one gets a new pair; the other is told the token is spent.
    """
    invalid = NotAuthenticated("The refresh token is invalid, expired or revoked.")
    token = _verified_refresh(refresh)
    if token is None:
        raise invalid
    user = active_user_by_pk(token.payload.get(user_id_claim()))
    if user is None:
        raise invalid
    with transaction.atomic():
        _, newly_blacklisted = token.blacklist()
    if not newly_blacklisted:
        raise invalid
    return tokens_issue(user=user)


def user_logout(*, user: Any, refresh_token: str) -> None:
    token = _verified_refresh(refresh_token)
    if token is None or str(token.payload.get(user_id_claim())) != str(user.pk):
        raise InvalidInput.for_field(
            "refresh_token", "refresh_token is invalid, expired or not yours"
        )
    token.blacklist()


def profile_update(*, account: Account, **changes: str) -> Account:
    user = account.user
    fields = [name for name in changes if hasattr(user, name)]
    for name in fields:
        setattr(user, name, changes[name])
    if fields:
        user.save(update_fields=fields)
    return account
