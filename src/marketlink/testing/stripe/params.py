"""Stripe's form encoding and the parameter checks every endpoint makes, with Stripe's wording.

Parameters outside the modelled slice are refused as unknown, as Stripe refuses misspelt ones, so
the gateway cannot silently rely on something the stand-in ignores. These refusals come before an
endpoint runs, so (as Stripe does) no idempotency key remembers them: see ``invalid``."""

import re
from typing import Any
from urllib.parse import parse_qsl

from marketlink.testing.stripe.common import JSONObject, StandInError

_KEY = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])*)")


def invalid(message: str, param: str | None = None, code: str | None = None) -> StandInError:
    """A 400 for parameters refused before the endpoint runs: Stripe saves no result for it
    under the idempotency key, so a corrected retry with the same key is a new request."""
    return StandInError(400, message, param=param, code=code, saved=False)


def parse_form(raw: str) -> JSONObject:
    """Decode Stripe's bracket notation (``a[b][0][c]=v``) into nested dicts and lists."""
    root: JSONObject = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY.fullmatch(key)
        parts = [match[1], *re.findall(r"\[([^\[\]]*)\]", match[2])] if match else [key]
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise invalid(f"Invalid request: {key} conflicts with {part}.", key)
            node = child
        last = parts[-1] or str(len(node))  # "expand[]=x" appends, as curl examples do
        if isinstance(node.get(last), dict):
            raise invalid(f"Invalid request: {key} conflicts with {last}.", key)
        node[last] = value
    return _listify(root)


def _listify(node: JSONObject) -> JSONObject:
    result: JSONObject = {}
    for key, value in node.items():
        if isinstance(value, dict):
            value = _listify(value)
            if value and all(k.isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=int)]
        result[key] = value
    return result


def param_name(prefix: str, key: str) -> str:
    return f"{prefix}[{key}]" if prefix else key


def only(params: JSONObject, allowed: set[str], prefix: str = "") -> None:
    for key in params:
        if key not in allowed:
            name = param_name(prefix, key)
            raise invalid(f"Received unknown parameter: {name}", name, "parameter_unknown")


def required(params: JSONObject, key: str, prefix: str = "") -> Any:
    if key not in params:
        name = param_name(prefix, key)
        raise invalid(f"Missing required param: {name}.", name, "parameter_missing")
    return params[key]


def as_str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise invalid("Invalid string", param)
    return value


def optional_str(params: JSONObject, key: str) -> str | None:
    return as_str(params[key], key) if key in params else None


def as_int(value: Any, param: str, minimum: int = 0, maximum: int | None = None) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
        raise invalid(f"Invalid integer: {value}", param)
    if int(value) < minimum:
        raise invalid(f"This value must be greater than or equal to {minimum}.", param)
    if maximum is not None and int(value) > maximum:
        raise invalid(f"This value must be less than or equal to {maximum}.", param)
    return int(value)


def as_bool(value: Any, param: str) -> bool:
    if value not in ("true", "false"):
        raise invalid(f"Invalid boolean: {value}", param)
    return bool(value == "true")


def as_dict(params: JSONObject, key: str, name: str | None = None) -> JSONObject:
    value = params.get(key, {})
    if not isinstance(value, dict):
        raise invalid("Invalid object", name or key)
    return value


def as_list(params: JSONObject, key: str) -> list[Any]:
    value = params.get(key, [])
    if not isinstance(value, list):
        raise invalid("Invalid array", key)
    return value


def metadata(params: JSONObject, key: str, name: str | None = None) -> dict[str, str]:
    """Stripe's limits, so an over-long order reference fails here rather than in production."""
    name = name or key
    found = as_dict(params, key, name)
    if len(found) > 50:
        raise invalid("You can specify up to 50 metadata keys.", name)
    for meta_key, value in found.items():
        param = f"{name}[{meta_key}]"
        if len(meta_key) > 40:
            raise invalid("Metadata keys can be at most 40 characters.", param)
        if len(as_str(value, param)) > 500:
            raise invalid("Metadata values can be at most 500 characters.", param)
    return dict(found)


def as_currency(value: Any, param: str) -> str:
    currency = as_str(value, param).lower()
    if not re.fullmatch(r"[a-z]{3}", currency):
        raise invalid(f"Invalid currency: {currency}", param)
    return currency


def one_of(value: Any, allowed: tuple[str, ...], param: str) -> str:
    """An enum parameter, refused in Stripe's words ("must be one of a, b, or c")."""
    found = as_str(value, param)
    if found not in allowed:
        choices = (
            " or ".join(allowed)
            if len(allowed) < 3
            else f"{', '.join(allowed[:-1])}, or {allowed[-1]}"
        )
        raise invalid(
            f"Invalid {param.rsplit('[', 1)[-1].rstrip(']')}: must be one of {choices}", param
        )
    return found
