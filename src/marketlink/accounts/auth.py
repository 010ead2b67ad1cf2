"""Who is calling: JWT bearer authentication and role guards for the routers.

Authentication failures make ninja answer 401; a valid token of the wrong role raises
:class:`PermissionDenied` (403). Both reach the client through the envelope's handlers.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Model
from django.http import HttpRequest
from ninja.security import HttpBearer

from marketlink import conf
from marketlink.accounts.models import Role
from marketlink.accounts.selectors import active_user_by_pk
from marketlink.accounts.services import account_for_user
from marketlink.accounts.tokens import token_classes, user_id_claim
from marketlink.exceptions import PermissionDenied


class AuthedRequest(HttpRequest):
    """What routers behind :class:`JWTAuth` receive: ``auth`` is the host's user object."""

    auth: Any


class _RecentUsers:
    """Users recently resolved from an access token, per process, for ``AUTH_USER_CACHE``
    seconds.

    Looking the user up costs a query (and building it costs more CPU than the database spends)
    on every authenticated request; a client usually sends the same token many times in a row.
    Entries are keyed by the token's unique ``jti``, so nothing can be served for another token,
    and each request gets its own instances. The trade-off: a user deactivated in the admin
    keeps access for at most that many seconds (an access token lives an hour regardless).
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, jti: str | None, pk: Any) -> Any | None:
        ttl = conf.get().AUTH_USER_CACHE
        if not ttl or not jti:
            return active_user_by_pk(pk)
        now = time.monotonic()
        entry = self._entries.get(jti)
        if entry is None or entry[0] <= now:
            user = active_user_by_pk(pk)
            if user is None:
                return None
            account = account_for_user(user)  # resolved once, rebuilt with the user
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            entry = (now + ttl, (_Snapshot(user), _Snapshot(account)))
            self._entries[jti] = entry
        user_snapshot, account_snapshot = entry[1]
        user = user_snapshot.build()
        user.marketlink_account = account_snapshot.build()
        return user


_IMMUTABLE = (str, int, float, bool, type(None), datetime, date, uuid.UUID, Decimal)


class _Snapshot:
    """A model instance's column values, from which each request gets a fresh instance the way
    the ORM builds one from a row (``Model.from_db``): far cheaper than ``deepcopy``, and no two
    requests share an object they might change."""

    def __init__(self, instance: Model) -> None:
        self.model = type(instance)
        self.db = instance._state.db
        self.names = [f.attname for f in instance._meta.concrete_fields]
        self.values = [getattr(instance, name) for name in self.names]

    def build(self) -> Any:
        values = [v if isinstance(v, _IMMUTABLE) else copy.deepcopy(v) for v in self.values]
        return self.model.from_db(self.db, self.names, values)


recent_users = _RecentUsers()


class JWTAuth(HttpBearer):
    """Bearer access tokens; ``roles`` limits the operation to those roles.

    ADMIN passes only where it is named: staff read and refund every order but book nothing and
    sell nothing, so a customer's or vendor's operation is not theirs.
    """

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
        user = recent_users.get(access.payload.get("jti"), access.payload.get(user_id_claim()))
        if user is None:
            return None
        request.user = user
        # Every authenticated caller has an account from here on; its role is derived from the
        # user as loaded above, so a change of staff status shows within AUTH_USER_CACHE.
        account = account_for_user(user)
        if self.roles:
            role = account.effective_role
            if role not in self.roles:
                allowed = " or ".join(sorted(r.lower() + "s" for r in self.roles))
                raise PermissionDenied(f"Only {allowed} can do this.")
        return user


authenticated = JWTAuth()
customers = JWTAuth(roles=[Role.CUSTOMER])
vendors = JWTAuth(roles=[Role.VENDOR])
vendors_and_admins = JWTAuth(roles=[Role.VENDOR, Role.ADMIN])
