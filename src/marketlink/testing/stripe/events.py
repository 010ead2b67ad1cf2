"""Events: what the other parts emit, and the Events API that lists them back.

Stripe keeps events for 30 days: older ones are neither listed nor retrieved. The list is newest
first (emission order breaks ties within a second), filtered by ``created``, ``type`` (``*``
wildcards) or ``types``, and ``delivery_success``, paged with ``limit`` and a cursor.

An event of a connected account carries its id as ``account`` and belongs to that account: the
Events API lists and retrieves it only for a request whose ``Stripe-Account`` header names the
account, and a platform request is answered "No such event", as Stripe answers it."""

import copy
import operator
from collections.abc import Callable
from fnmatch import fnmatchcase

from marketlink.testing.stripe import lists
from marketlink.testing.stripe.common import API_VERSION, JSONObject, Store, new_id, no_such
from marketlink.testing.stripe.params import as_bool, as_int, as_list, as_str, invalid, only

RETENTION = 30 * 24 * 60 * 60
_LIST_PARAMS = {"created", "type", "types", "delivery_success", *lists.PAGE_PARAMS}
_RANGE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}


class Events:
    """``has_endpoint(connect)`` says whether a platform (``False``) or Connect (``True``)
    webhook endpoint is configured, which is what an event's ``pending_webhooks`` counts."""

    def __init__(
        self,
        store: Store,
        *,
        has_endpoint: Callable[[bool], bool],
        acknowledged: Callable[[str], bool],
    ) -> None:
        self._store = store
        self._has_endpoint = has_endpoint
        self._acknowledged = acknowledged
        self._pending: list[JSONObject] = []
        # The API request being answered, which events record as their cause.
        self.current_request: dict[str, str | None] | None = None

    def emit(
        self,
        event_type: str,
        obj: JSONObject,
        *,
        account: str | None = None,
        previous: JSONObject | None = None,
    ) -> None:
        """Called with the store's lock held; the event is delivered once the lock is let go.
        ``account``: the connected account the event happened on (a Connect event);
        ``previous``: the changed attributes' former values, as ``*.updated`` events carry."""
        data: JSONObject = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        event = self._store.add(
            {
                "id": new_id("evt"),
                "object": "event",
                **({"account": account} if account is not None else {}),
                "api_version": API_VERSION,
                "created": self._store.now(),
                "livemode": False,
                "type": event_type,
                "pending_webhooks": 1 if self._has_endpoint(account is not None) else 0,
                "request": dict(self.current_request or {"id": None, "idempotency_key": None}),
                "data": data,
            }
        )
        self._pending.append(event)

    def take_pending(self) -> list[JSONObject]:
        pending, self._pending = self._pending, []
        return pending

    def retrieve(self, event_id: str, account: str | None = None) -> JSONObject:
        event = self._store.get("event", event_id, "id")
        if event["created"] < self._oldest_kept() or event.get("account") != account:
            raise no_such("event", event_id, "id")
        return event

    def page(self, params: JSONObject, account: str | None = None) -> JSONObject:
        """``GET /v1/events``, for the platform or (``account``) one connected account."""
        only(params, _LIST_PARAMS)
        return lists.page(
            self._newest_first(account),
            params,
            url="/v1/events",
            object_type="event",
            keep=self._filter(params),
        )

    def _oldest_kept(self) -> int:
        return self._store.now() - RETENTION

    def _newest_first(self, account: str | None) -> list[JSONObject]:
        oldest = self._oldest_kept()
        return lists.newest_first(
            obj
            for obj in self._store.objects.values()
            if obj["object"] == "event"
            and obj["created"] >= oldest
            and obj.get("account") == account
        )

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
        raise invalid("You may only specify one of these parameters: type, types.")
    if "type" in params:
        pattern = as_str(params["type"], "type")
        return lambda event_type: fnmatchcase(event_type, pattern)
    if "types" in params:
        wanted = {as_str(value, f"types[{i}]") for i, value in enumerate(as_list(params, "types"))}
        if len(wanted) > 20:
            raise invalid("You may pass up to 20 types.", "types")
        return lambda event_type: event_type in wanted
    return lambda event_type: True
