"""The response envelope and the mapping of every failure onto it.

Every JSON answer is ``{"success", "message", "data"}``; errors add ``errors`` (one item per bad
field), lists add ``pagination``. Routers build successes with :func:`ok`, :func:`created` and
:func:`paginate`; failures are raised (``marketlink.exceptions``) and turned into responses here by
the handlers :func:`install_error_handlers` registers, so no router formats an error by hand.

The body parser lives here too because it is where malformed input first becomes an error: it
refuses non-JSON content types (415), bodies over ``MAX_BODY_BYTES`` (413) and NUL characters,
which PostgreSQL cannot store and would otherwise surface as a 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.datastructures import MultiValueDict
from django.views.decorators.csrf import csrf_exempt
from ninja import Field, Schema, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.errors import Throttled as NinjaThrottled
from ninja.parser import Parser

from marketlink import conf
from marketlink.exceptions import (
    FieldError,
    InvalidInput,
    MarketlinkError,
    NotAuthenticated,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    ServiceUnavailable,
    Throttled,
    UnsupportedMediaType,
)

if TYPE_CHECKING:
    from ninja import NinjaAPI

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ErrorItem(Schema):
    loc: list[str | int]
    msg: str


class ErrorEnvelope(Schema):
    success: bool = False
    message: str
    data: None = None
    errors: list[ErrorItem] = []
    code: str | None = Field(
        None, description="Only on refusals a program must tell apart, e.g. which limit a 409 hit."
    )


class Envelope(Schema, Generic[T]):
    success: bool = True
    message: str = ""
    data: T


class Pagination(Schema):
    count: int
    limit: int
    offset: int


class PageEnvelope(Schema, Generic[T]):
    success: bool = True
    message: str = ""
    data: list[T]
    pagination: Pagination


class PageQuery(Schema):
    """``?limit=&offset=`` of every list; ``limit`` is capped at ``MAX_PAGE_SIZE``."""

    limit: int | None = Field(None, ge=1, description="Page size (default PAGE_SIZE).")
    offset: int = Field(0, ge=0, le=2**31)


def ok(data: Any, message: str = "") -> dict[str, Any]:
    return {"success": True, "message": message, "data": data}


def created(data: Any, message: str = "") -> Status[dict[str, Any]]:
    return Status(201, ok(data, message))


def paginate(queryset: QuerySet[Any], page: PageQuery, message: str = "") -> dict[str, Any]:
    """One page of ``queryset``: a COUNT plus one slice, whatever the page size."""
    settings = conf.get()
    limit = min(page.limit or settings.PAGE_SIZE, settings.MAX_PAGE_SIZE)
    items = list(queryset[page.offset : page.offset + limit])
    return {
        "success": True,
        "message": message,
        "data": items,
        "pagination": {"count": queryset.count(), "limit": limit, "offset": page.offset},
    }


def responses(ok_status: int, schema: Any, *error_codes: int, body: bool = False) -> dict[int, Any]:
    """The ``response=`` of an operation: its success schema plus every error it can answer.

    400 is always possible (a malformed query or path parameter); operations that read a JSON
    body can also answer 413 and 415 from the parser.
    """
    codes = {400, *error_codes} | ({413, 415} if body else set())
    return {ok_status: schema} | dict.fromkeys(sorted(codes), ErrorEnvelope)


def refuse_oversized_body(request: HttpRequest, *, allowance: int = 1) -> None:
    """:class:`PayloadTooLarge` (413) when the body is over ``allowance`` times
    ``MAX_BODY_BYTES``: the one body limit, for the JSON parser and for the views that read the
    raw body (a provider's webhook, whose events are larger than any request of ours)."""
    limit = conf.get().MAX_BODY_BYTES * allowance
    if len(request.body) > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")


class JSONParser(Parser):
    """Ninja's parser, strict about what it accepts (see the module docstring)."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        content_type = request.content_type or ""
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise UnsupportedMediaType(
                f"Send the request body as application/json, not {content_type or 'no type'}."
            )
        refuse_oversized_body(request)
        try:
            data = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidInput(f"The request body is not valid JSON: {exc}.") from None
        _reject_nul(data, ("body",))
        return data  # type: ignore[no-any-return]

    def parse_querydict(
        self, data: MultiValueDict[str, Any], list_fields: list[str], request: HttpRequest
    ) -> dict[str, Any]:
        for key, values in data.lists():
            for value in (key, *values):
                _reject_nul(value, ("query", key))
        return super().parse_querydict(data, list_fields, request)


def _reject_nul(value: Any, loc: tuple[str | int, ...]) -> None:
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput(
                f"{loc[-1]} must not contain NUL characters.",
                errors=[FieldError(loc, "must not contain NUL characters")],
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _reject_nul(key, loc)
            _reject_nul(item, (*loc, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_nul(item, (*loc, index))


def _humanize(error: Mapping[str, Any]) -> tuple[tuple[str | int, ...], str]:
    """Turn one pydantic error into a location without ninja's internals and a sentence."""
    loc = tuple(error.get("loc", ()))
    if len(loc) >= 2 and loc[0] == "body":
        loc = (loc[0], *loc[2:])  # drop the view's parameter name
    field = next((str(part) for part in reversed(loc) if isinstance(part, str)), "input")
    msg = str(error.get("msg", "is invalid"))
    if error.get("type") == "missing":
        return loc, f"{field} is required"
    if msg.startswith("Value error, "):
        return loc, msg.removeprefix("Value error, ")
    if " should " in f" {msg} ":
        return loc, f"{field} {msg[msg.index('should') :]}"
    return loc, f"{field}: {msg}"


def error_body(
    message: str, errors: Iterable[FieldError] = (), data: Any = None, code: str | None = None
) -> dict[str, Any]:
    """An error's answer; ``code`` appears only on the errors that have one."""
    body = {
        "success": False,
        "message": message,
        "data": data,
        "errors": [{"loc": list(e.loc), "msg": e.msg} for e in errors],
    }
    if code is not None:
        body["code"] = code
    return body


def throttled_response(exc: Throttled) -> HttpResponse:
    """The 429 of a view outside the ninja API (a plain Django page), in the envelope."""
    from django.http import JsonResponse

    response = JsonResponse(error_body(exc.message), status=exc.status_code)
    if exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


def _envelope(
    api: NinjaAPI,
    request: HttpRequest,
    status: int,
    message: str,
    errors: Iterable[FieldError] = (),
    data: Any = None,
    code: str | None = None,
) -> HttpResponse:
    return api.create_response(request, error_body(message, errors, data, code), status=status)


@csrf_exempt
def unknown_path(request: HttpRequest, path: str = "") -> HttpResponse:
    """The last URL pattern under marketlink's prefix: an unknown path gets a 404 in the
    envelope (not Django's HTML page), with a hint when only the trailing slash is missing.
    Exempt from CSRF as the API's own views are: an API client's POST to a wrong path would
    otherwise get Django's HTML 403 about a cookie instead of this 404."""
    from django.http import JsonResponse
    from django.urls import Resolver404, resolve

    message = "No such endpoint."
    if not request.path.endswith("/"):
        try:
            resolve(request.path + "/")
            message = f"No such endpoint; did you mean {request.path}/ (with the slash)?"
        except Resolver404:
            pass
    return JsonResponse(error_body(message), status=404)


def install_error_handlers(api: NinjaAPI) -> None:
    """Map every failure a request can meet onto a response in the envelope."""

    def marketlink_error(request: HttpRequest, exc: Any) -> HttpResponse:
        response = _envelope(
            api, request, exc.status_code, exc.message, exc.errors, exc.data, exc.code
        )
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response

    def validation_error(request: HttpRequest, exc: Any) -> HttpResponse:
        items = [FieldError(*_humanize(error)) for error in exc.errors]
        message = items[0].msg if items else "The request is invalid."
        if len(items) > 1:
            message += f" (and {len(items) - 1} more problem{'s' if len(items) > 2 else ''})"
        return _envelope(api, request, 400, message, items)

    def http_error(request: HttpRequest, exc: Any) -> HttpResponse:
        # Ninja wraps whatever the body parser raises; our own error is the real answer.
        if isinstance(exc.__cause__, MarketlinkError):
            return marketlink_error(request, exc.__cause__)
        if isinstance(exc, AuthenticationError):
            return marketlink_error(request, NotAuthenticated())
        if isinstance(exc, NinjaThrottled):
            return marketlink_error(request, Throttled())
        return _envelope(api, request, exc.status_code, exc.message)

    def not_found(request: HttpRequest, exc: Any) -> HttpResponse:
        return marketlink_error(request, NotFound())

    def forbidden(request: HttpRequest, exc: Any) -> HttpResponse:
        return marketlink_error(request, PermissionDenied())

    def too_big(request: HttpRequest, exc: Any) -> HttpResponse:
        return marketlink_error(request, PayloadTooLarge())

    def database_down(request: HttpRequest, exc: Any) -> HttpResponse:
        logger.error("database unavailable on %s %s: %s", request.method, request.path, exc)
        return marketlink_error(request, ServiceUnavailable())

    def unexpected(request: HttpRequest, exc: Any) -> HttpResponse:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return _envelope(api, request, 500, "Internal error; it has been logged.")

    api.add_exception_handler(MarketlinkError, marketlink_error)
    api.add_exception_handler(ValidationError, validation_error)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(DjangoPermissionDenied, forbidden)
    api.add_exception_handler(RequestDataTooBig, too_big)
    api.add_exception_handler(OperationalError, database_down)
    api.add_exception_handler(InterfaceError, database_down)
    api.add_exception_handler(Exception, unexpected)
