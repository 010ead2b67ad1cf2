"""Stripe's idempotency keys (API v1): the first answer to a POST with a key is saved, and a
retry with the same key gets it back, whatever it was.

What Stripe documents, and what the stand-in therefore does:

- the status and body of the first request are saved once the endpoint has begun executing,
  errors included: a 400 it refused (a destination without the ``transfers`` capability, a
  reversal the connected account's balance cannot cover) or a 500 comes back again, marked
  ``Idempotent-Replayed: true``;
- nothing is saved when the request never reached the endpoint: refused parameters (unknown,
  missing, malformed), a wrong API key, or an outage (the ``down`` and ``fail_next`` levers, a
  503 from ``fail_transfers``), so a retry with the same key runs anew;
- the same key with other parameters (or on another endpoint) is a 400 ``idempotency_error``;
- keys are pruned once 24 hours old: a retry a day later runs as a new request. The stand-in
  measures that on its own clock, so ``clock_offset`` moves it;
- keys belong to the account acted on (the ``Stripe-Account`` header), as Stripe scopes them.

Stripe's 409 for a key whose first request is still running cannot happen here: the stand-in
answers one request at a time."""

from dataclasses import dataclass

from marketlink.testing.stripe.common import StandInError, Store
from marketlink.testing.stripe.params import invalid

LIFETIME = 24 * 60 * 60
_MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class _Saved:
    fingerprint: str
    status: int
    body: bytes
    saved_at: int


class IdempotencyKeys:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._saved: dict[tuple[str | None, str], _Saved] = {}

    def replay(self, scope: str | None, key: str, fingerprint: str) -> tuple[int, bytes] | None:
        """The saved answer for ``key``, or ``None`` when the request is to run."""
        if len(key) > _MAX_KEY_LENGTH:
            raise invalid(
                f"Idempotency keys can be at most {_MAX_KEY_LENGTH} characters long.",
                "Idempotency-Key",
            )
        saved = self._saved.get((scope, key))
        if saved is None:
            return None
        if self._store.now() - saved.saved_at >= LIFETIME:
            del self._saved[(scope, key)]
            return None
        if saved.fingerprint != fingerprint:
            raise StandInError(
                400,
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
                error_type="idempotency_error",
                saved=False,
            )
        return saved.status, saved.body

    def save(self, scope: str | None, key: str, fingerprint: str, status: int, body: bytes) -> None:
        self._saved[(scope, key)] = _Saved(fingerprint, status, body, self._store.now())
