"""Who is acting: the person behind a change, for the order history to name.

Many call chains reach the state machine (a cancel, a refund, an invoice, reconciliation, a
replayed webhook), so the person is not passed down every service: the outermost layer that
knows them opens a scope, and ``orders.history`` reads it when it writes the history rows.

- The API opens one for every operation (``marketlink.api``): the authenticated user, or no one.
- Admin actions open one for the staff user (``orders.admin.ActingAdmin``).
- The ``marketlink`` commands that change orders open one for their operator: ``--as EMAIL``,
  else the account that runs the command (:func:`os_user`).

A scope lives in a :class:`~contextvars.ContextVar` and is always left through its reset token,
so nothing carries over from one request to the next one served by the same thread (a WSGI or
gthread worker reuses its threads; asgiref gives each sync view a copy of the caller's context).
Work with no scope around it (a Huey consumer's task, a webhook) names no one. A task run inline
(Huey's immediate mode) runs inside its caller's scope, and names the caller.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    """``user_pk``: the host user acting (API, admin), kept as a key so no model instance
    outlives its request; ``operator``: who ran a command, as text (no user row needed)."""

    user_pk: Any = None
    operator: str = ""

    def log_fields(self) -> dict[str, Any]:
        """What a log line of a change says of who made it."""
        return {"actor_id": self.user_pk, "operator": self.operator}


NO_ONE = Actor()

# The history's ``operator`` column: long enough for any email address (RFC 5321's 254).
OPERATOR_MAX_LENGTH = 254

_current: ContextVar[Actor] = ContextVar("marketlink_actor", default=NO_ONE)


def current() -> Actor:
    """The innermost scope's actor, or :data:`NO_ONE` outside any scope."""
    return _current.get()


@contextmanager
def acting(*, user: Any = None, operator: str = "") -> Iterator[Actor]:
    """Changes made inside the block are made by ``user`` (a host user object; anonymous or
    ``None`` is no one) or by ``operator``. With neither, the block acts for no one: work a
    person's request does on others' orders (reclaiming lapsed reservations) is not theirs."""
    pk = user.pk if user is not None and getattr(user, "is_authenticated", False) else None
    actor = Actor(user_pk=pk, operator=operator)
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def os_user() -> str:
    """The account running this process, for a command run without ``--as``. ``getpass`` reads
    the environment, then the password database; a container's user may have neither."""
    try:
        return getpass.getuser()
    except (KeyError, OSError, ImportError):
        getuid = getattr(os, "getuid", None)
        return f"uid {getuid()}" if getuid is not None else "unknown"
