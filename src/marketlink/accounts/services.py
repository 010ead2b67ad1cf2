"""Writes for accounts: registration, login, tokens, profile."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketlink.accounts.models import EMAIL_MAX_LENGTH, Account, Role, placeholder_email
from marketlink.accounts.selectors import active_user_by_pk, user_by_email
from marketlink.accounts.tokens import token_classes, user_id_claim
from marketlink.exceptions import FieldError, InvalidInput, NotAuthenticated, PermissionDenied

logger = logging.getLogger(__name__)

EMAIL_TAKEN = "a user with this email already exists"


def _usable_email(user: Any) -> str:
    """The host user's address as an account stores it, or "" when it has none that fits.

    Lower-casing can lengthen an address ("İ" becomes two characters), so the length that counts
    is the stored one; the host's column may hold what ours cannot.
    """
    email = (getattr(user, user.get_email_field_name(), "") or "").lower()
    return email if len(email) <= EMAIL_MAX_LENGTH else ""


def account_for_user(user: Any) -> Account:
    """The user's account, created on first sight for users the host made itself.

    A superuser from ``createsuperuser`` or a user imported by the host has no account yet; it
    gets one, as CUSTOMER, the first time marketlink meets it (ADMIN is never stored: it comes
    from the staff flags at each request). A user without a usable address gets a placeholder.
    """
    try:
        return user.marketlink_account  # type: ignore[no-any-return]
    except Account.DoesNotExist:
        pass
    placeholder = placeholder_email(user.pk)
    try:
        with transaction.atomic():
            account = Account.objects.create(user=user, email=_usable_email(user) or placeholder)
    except IntegrityError:
        # Made concurrently for this user, or another user has the address (a host's users need
        # not have unique ones): the first to meet marketlink logs in with it, others keep the
        # placeholder.
        account, _ = Account.objects.get_or_create(user=user, defaults={"email": placeholder})
    user.marketlink_account = account
    return account


def booking_email(user: Any) -> str:
    """The address the user's orders, receipts and payments go by; "" when there is none.

    An account that got a placeholder takes the user's address once the host has given it one
    (and no other account has it), so doing what a refused booking asks is enough to book.
    """
    account = account_for_user(user)
    if account.has_email:
        return account.email
    email = _usable_email(user)
    if not email:
        return ""
    try:
        with transaction.atomic():
            Account.objects.filter(pk=account.pk).update(email=email, updated_at=timezone.now())
    except IntegrityError:
        return ""  # another account has it
    account.email = email
    logger.info("account %s took its user's address", account.id)
    return email


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
    # The stock User logs in by username: the address is the natural unique username, so it
    # must fit there too. Checked after lower-casing, which can lengthen it.
    fields = {email_field, username_field}
    host_limits = (getattr(user_model._meta.get_field(name), "max_length", None) for name in fields)
    limit = min([EMAIL_MAX_LENGTH, *(n for n in host_limits if n)])
    if len(email) > limit:
        raise InvalidInput.for_field("email", f"email must be at most {limit} characters")
    for name in fields:
        setattr(user, name, email)
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
