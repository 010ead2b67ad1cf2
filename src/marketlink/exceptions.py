"""marketlink's one error family.

Services raise these; they know nothing of HTTP. Each class carries the status code the API answers
with, so the mapping from failure to status lives here and only here (``marketlink.envelope`` turns
any of them into a response in our envelope).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """A problem with one input field; ``loc`` is a path such as ``("body", "price")``."""

    loc: tuple[str | int, ...]
    msg: str


class MarketlinkError(Exception):
    """Base of every error a client may cause or be told about."""

    status_code = 400
    default_message = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        errors: Sequence[FieldError] = (),
        data: Any = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.errors = tuple(errors)
        # What the answer's ``data`` carries; an error is usually ``None``, a failed health
        # check its report of each dependency.
        self.data = data
        # A stable name for programs, where a client must tell one refusal from another of the
        # same status (which limit a 409 hit); the message is for people and may be reworded.
        self.code = code
        # Whole seconds after which a retry may succeed (a throttle's window, a busy lock's
        # lapse), sent as ``Retry-After``.
        self.retry_after = retry_after
        super().__init__(self.message)


class InvalidInput(MarketlinkError):
    status_code = 400
    default_message = "The request is invalid."

    @classmethod
    def for_field(cls, field: str, msg: str, *, location: str = "body") -> InvalidInput:
        """An error about one named field, whose message also names it for a person to read."""
        return cls(msg, errors=[FieldError((location, field), msg)])


class NotAuthenticated(MarketlinkError):
    status_code = 401
    default_message = "Authentication credentials were not provided or are not valid."


class PermissionDenied(MarketlinkError):
    status_code = 403
    default_message = "You do not have permission to do this."


class NotFound(MarketlinkError):
    status_code = 404
    default_message = "Not found."


class Conflict(MarketlinkError):
    status_code = 409
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(MarketlinkError):
    status_code = 413
    default_message = "The request body is too large."


class UnsupportedMediaType(MarketlinkError):
    status_code = 415
    default_message = "Send the request body as application/json."


class Throttled(MarketlinkError):
    status_code = 429
    default_message = "Too many requests; try again later."


class PaymentProviderError(MarketlinkError):
    status_code = 502
    default_message = "The payment provider failed; try again shortly."


class ServiceUnavailable(MarketlinkError):
    status_code = 503
    default_message = "A service marketlink depends on is unavailable; try again shortly."
