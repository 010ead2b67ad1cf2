"""Who is calling: JWT bearer authentication and role guards for the routers.

Authentication failures make ninja answer 401; a valid token of the wrong role raises
:class:`PermissionDenied` (403). Both reach the client through the envelope's handlers.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from marketlink.accounts.models import Role
from marketlink.accounts.selectors import account_for_user, active_user_by_pk
from marketlink.accounts.tokens import token_classes, user_id_claim
from marketlink.exceptions import PermissionDenied


class AuthedRequest(HttpRequest):
    """What routers behind :class:`JWTAuth` receive: ``auth`` is the host's user object."""

    auth: Any


class JWTAuth(HttpBearer):
    """Bearer access tokens; ``roles`` limits the operation to those roles (ADMIN always passes)."""

    def __init__(self, roles: Iterable[str] = ()) -> None:
        self.roles = frozenset(roles)
        super().__init__()

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        from ninja_jwt.exceptions import TokenError

        access_class, _ = token_classes()
        try:
            access = access_class(token)
        except TokenError:
            return None
        user = active_user_by_pk(access.payload.get(user_id_claim()))
        if user is None:
            return None
        request.user = user
        if self.roles:
            role = account_for_user(user).effective_role
            if role not in self.roles and role != Role.ADMIN:
                allowed = " or ".join(sorted(r.lower() + "s" for r in self.roles))
                raise PermissionDenied(f"Only {allowed} can do this.")
        return user


authenticated = JWTAuth()
customers = JWTAuth(roles=[Role.CUSTOMER])
vendors = JWTAuth(roles=[Role.VENDOR])
vendors_and_admins = JWTAuth(roles=[Role.VENDOR, Role.ADMIN])
