"""How provider events reach an app above payments (payouts) without payments importing it:
the app registers, in its ``AppConfig.ready()``, handlers for kinds of event payments does not
handle itself (a connected account's, a transfer's), the provider reads they need first, and
steps it adds to kinds payments does handle (a dispute also holds a vendor's payout).

Each runs where payments' own handlers run: inside the stored event's transaction, exactly once
per event, replayable; a read runs before it, outside any transaction. An event of a kind no one
registered is ignored, as today.
"""

from __future__ import annotations

from collections.abc import Callable

from marketlink.orders.models import RepairOrder
from marketlink.payments.gateways.base import EventKind, ProviderEvent

# (event, source) -> what was done: the event needs no order (it may name one).
OwnHandler = Callable[[ProviderEvent, str], str]
# (order, event, source) -> what was done, after payments' handler of the same kind.
Step = Callable[[RepairOrder, ProviderEvent, str], str]
Read = Callable[[ProviderEvent], ProviderEvent]

_handlers: dict[EventKind, OwnHandler] = {}
_steps: dict[EventKind, list[Step]] = {}
_reads: dict[EventKind, Read] = {}


def handle_with(kind: EventKind, handler: OwnHandler, *, read: Read | None = None) -> None:
    _handlers[kind] = handler
    if read is not None:
        _reads[kind] = read


def also_on(kind: EventKind, step: Step) -> None:
    if step not in _steps.setdefault(kind, []):
        _steps[kind].append(step)


def handler_of(kind: EventKind) -> OwnHandler | None:
    return _handlers.get(kind)


def steps_of(kind: EventKind) -> list[Step]:
    return _steps.get(kind, [])


def read_of(kind: EventKind) -> Read | None:
    return _reads.get(kind)
