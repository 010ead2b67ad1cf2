"""Stripe's list envelope and cursor pagination, shared by every list endpoint.

A list is newest first; ``limit`` is 1..100 (default 10); ``starting_after`` and
``ending_before`` (not both) name an object of the list's type, which need not pass the filters
itself; ``has_more`` says whether the page stopped short."""

import copy
from collections.abc import Callable, Iterable

from marketlink.testing.stripe.common import JSONObject, no_such
from marketlink.testing.stripe.params import as_int, as_str, invalid

PAGE_PARAMS = {"limit", "starting_after", "ending_before", "expand"}


def newest_first(objects: Iterable[JSONObject]) -> list[JSONObject]:
    """Objects in creation order (as the store keeps them), newest first: ``created`` is in
    seconds, so within one second the later one comes first."""
    order = sorted(enumerate(objects), key=lambda pair: (pair[1]["created"], pair[0]))
    return [obj for _, obj in reversed(order)]


def page(
    newest_first: list[JSONObject],
    params: JSONObject,
    *,
    url: str,
    object_type: str,
    keep: Callable[[JSONObject], bool] = lambda obj: True,
) -> JSONObject:
    """One page of the objects in ``newest_first`` that ``keep`` accepts."""
    limit = as_int(params.get("limit", "10"), "limit", minimum=1, maximum=100)
    if "starting_after" in params and "ending_before" in params:
        raise invalid(
            "You may only specify one of these parameters: ending_before, starting_after."
        )
    position = {obj["id"]: i for i, obj in enumerate(newest_first)}

    def cursor(param: str) -> int:
        if param not in params:
            return -1
        object_id = as_str(params[param], param)
        if object_id not in position:
            raise no_such(object_type, object_id, param)
        return position[object_id]

    chosen = [obj for obj in newest_first if keep(obj)]
    if "ending_before" in params:
        end = cursor("ending_before")
        before = [obj for obj in chosen if position[obj["id"]] < end]
        found, has_more = before[-limit:], len(before) > limit
    else:
        start = cursor("starting_after")
        after = [obj for obj in chosen if position[obj["id"]] > start]
        found, has_more = after[:limit], len(after) > limit
    return {"object": "list", "data": copy.deepcopy(found), "has_more": has_more, "url": url}
