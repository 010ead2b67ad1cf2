"""Events: what the other parts emit, and the Events API that lists them back.

Stripe keeps events for 30 days: older ones are neither listed nor retrieved. The list is newest
first (emission order breaks ties within a second), filtered by ``created``, ``type`` (``*``
wildcards) or ``types``, and ``delivery_success``, paged with ``limit`` and a cursor."""

import copy
import operator
from collections.abc import Callable
from fnmatch import fnmatchcase

from marketlink.testing.stripe.common import (
    API_VERSION,
    JSONObject,
    StandInError,
    Store,
    new_id,
    no_such,
)
from marketlink.testing.stripe.params import as_bool, as_int, as_list, as_str, only

RETENTION = 30 * 24 * 60 * 60
_LIST_PARAMS = {
    "created",
    "type",
    "types",
    "delivery_success",
    "limit",
    "starting_after",
    "ending_before",
    "expand",
}
_RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


class Events:
    def __init__(
        self, store: Store, *, has_endpoint: Callable[[], bool], acknowledged: Callable[[str], bool]
    ) -> None:
        self._store = store
        self._has_endpoint = has_endpoint
        self._acknowledged = acknowledged
        self._pending: list[JSONObject] = []
        # The API request being answered, which events record as their cause.
        self.current_request: dict[str, str | None] | None = None

    def emit(self, event_type: str, obj: JSONObject) -> None:
        """Called with the store's lock held; the event is delivered once the lock is let go."""
        event = self._store.add(
            {
                "id": new_id("evt"),
                "object": "event",
                "api_version": API_VERSION,
                "created": self._store.now(),
                "livemode": False,
                "type": event_type,
                "pending_webhooks": 1 if self._has_endpoint() else 0,
                "request": dict(self.current_request or {"id": None, "idempotency_key": None}),
                "data": {"object": copy.deepcopy(obj)},
            }
        )
        self._pending.append(event)

    def take_pending(self) -> list[JSONObject]:
        pending, self._pending = self._pending, []
        return pending

    def retrieve(self, event_id: str) -> JSONObject:
        event = self._store.get("event", event_id, "id")
        if event["created"] < self._oldest_kept():
            raise no_such("event", event_id, "id")
        return event

    def page(self, params: JSONObject) -> JSONObject:
        """``GET /v1/events``."""
        only(params, _LIST_PARAMS)
        limit = as_int(params.get("limit", "10"), "limit", minimum=1, maximum=100)
        kept = self._newest_first()
        position = {event["id"]: i for i, event in enumerate(kept)}
        chosen = list(filter(self._filter(params), kept))
        if "starting_after" in params and "ending_before" in params:
            raise StandInError(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
            )
        if "ending_before" in params:
            cursor = self._cursor(params, "ending_before", position)
            before = [event for event in chosen if position[event["id"]] < cursor]
            page, has_more = before[-limit:], len(before) > limit
        else:
            cursor = self._cursor(params, "starting_after", position)
            after = [event for event in chosen if position[event["id"]] > cursor]
            page, has_more = after[:limit], len(after) > limit
        return {
            "object": "list",
            "data": copy.deepcopy(page),
            "has_more": has_more,
            "url": "/v1/events",
        }

    def _oldest_kept(self) -> int:
        return self._store.now() - RETENTION

    def _newest_first(self) -> list[JSONObject]:
        oldest = self._oldest_kept()
        emitted = [
            obj
            for obj in self._store.objects.values()
            if obj["object"] == "event" and obj["created"] >= oldest
        ]
        # Ties within a second: the later emission first.
        order = sorted(enumerate(emitted), key=lambda pair: (pair[1]["created"], pair[0]))
        return [event for _, event in reversed(order)]

    def _cursor(self, params: JSONObject, param: str, position: dict[str, int]) -> int:
        if param not in params:
            return -1
        event_id = as_str(params[param], param)
        if event_id not in position:
            raise no_such("event", event_id, param)
        return position[event_id]

    def _filter(self, params: JSONObject) -> Callable[[JSONObject], bool]:
        """The filters, checked before any event is looked at (a bad one is a 400 even when
        nothing would match)."""
        created, event_type = _created_test(params), _type_test(params)
        if "delivery_success" in params:
            wanted = as_bool(params["delivery_success"], "delivery_success")
            acknowledged = self._acknowledged
            return lambda event: (
                created(event["created"])
                and event_type(event["type"])
                and acknowledged(event["id"]) == wanted
            )
        return lambda event: created(event["created"]) and event_type(event["type"])


def _created_test(params: JSONObject) -> Callable[[int], bool]:
    if "created" not in params:
        return lambda created: True
    bounds = params["created"]
    if not isinstance(bounds, dict):
        exactly = as_int(bounds, "created")
        return lambda created: created == exactly
    only(bounds, set(_RANGE), "created")
    limits = [(_RANGE[op], as_int(value, f"created[{op}]")) for op, value in bounds.items()]
    return lambda created: all(compare(created, limit) for compare, limit in limits)


def _type_test(params: JSONObject) -> Callable[[str], bool]:
    if "type" in params and "types" in params:
        raise StandInError(400, "You may only specify one of these parameters: type, types.")
    if "type" in params:
        pattern = as_str(params["type"], "type")
        return lambda event_type: fnmatchcase(event_type, pattern)
    if "types" in params:
        wanted = {as_str(value, f"types[{i}]") for i, value in enumerate(as_list(params, "types"))}
        if len(wanted) > 20:
            raise StandInError(400, "You may pass up to 20 types.", param="types")
        return lambda event_type: event_type in wanted
    return lambda event_type: True
