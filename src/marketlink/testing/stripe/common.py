"""What every part of the stand-in shares: Stripe's error shape, its ids, and the one store of
objects with its clock, guarded by one lock."""

import copy
import secrets
import string
import threading
import time
from dataclasses import dataclass
from typing import Any

# The version stripe-python 16.1 pins; events carry it as an endpoint created with that SDK would.
API_VERSION = "2026-10-28.endive"

JSONObject = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits


class StandInError(Exception):
    """An error in Stripe's shape; control methods raise it for the misuse the API would refuse."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        saved: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code
        # Whether Stripe would save this answer under the request's idempotency key: only
        # once the endpoint has begun executing, so not for refused parameters or outages.
        self.saved = saved

    def body(self) -> JSONObject:
        error: JSONObject = {"type": self.error_type, "message": self.message}
        if self.param is not None:
            error["param"] = self.param
        if self.code is not None:
            error["code"] = self.code
        return {"error": error}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: JSONObject
    idempotency_key: str | None
    status: int
    stripe_version: str | None = None
    stripe_account: str | None = None  # the Stripe-Account header: made on an account's behalf


def new_id(prefix: str) -> str:
    return f"{prefix}_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def no_such(object_type: str, object_id: str, param: str) -> StandInError:
    return StandInError(
        404, f"No such {object_type}: '{object_id}'", param=param, code="resource_missing"
    )


class Store:
    """Every object by id, and the stand-in's clock.

    One re-entrant lock guards it, shared by the server's request threads and the test's own
    calls; the parts change objects only with it held. ``clock_offset`` (seconds, negative for
    the past) shifts every timestamp the stand-in writes and the Events API's 30-day window, so
    a test can make events that happened weeks ago.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, JSONObject] = {}
        self.clock_offset = 0.0

    def now(self) -> int:
        return int(time.time() + self.clock_offset)

    def add(self, obj: JSONObject) -> JSONObject:
        self.objects[obj["id"]] = obj
        return obj

    def get(self, object_type: str, object_id: str, param: str) -> JSONObject:
        obj = self.objects.get(object_id)
        if obj is None or obj["object"] != object_type:
            raise no_such(object_type, object_id, param)
        return obj

    def copies(self, object_type: str) -> dict[str, JSONObject]:
        with self.lock:
            return {
                key: copy.deepcopy(value)
                for key, value in self.objects.items()
                if value["object"] == object_type
            }
