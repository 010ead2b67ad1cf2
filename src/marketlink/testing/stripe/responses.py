"""What the stand-in answers over HTTP: JSON for the API, small HTML pages for the hosted pages
(Checkout, Connect onboarding, the Express Dashboard)."""

import html
import json
from typing import NamedTuple

from marketlink.testing.stripe.common import JSONObject


class Response(NamedTuple):
    status: int
    body: bytes
    headers: dict[str, str]


def dumps(obj: JSONObject) -> bytes:
    return json.dumps(obj, indent=2).encode()


def page(status: int, body_html: str) -> Response:
    document = f"<!doctype html><meta charset=utf-8><title>Stripe stand-in</title>{body_html}"
    return Response(status, document.encode(), {"Content-Type": "text/html; charset=utf-8"})


def redirect(location: str) -> Response:
    return Response(303, b"", {"Location": location})


def buttons(action: str, *labels: tuple[str, str]) -> str:
    """One POST form per ``(path, label)``, under ``action``."""
    return "".join(
        f'<form method="post" action="{html.escape(action)}/{path}"><button>{label}</button></form>'
        for path, label in labels
    )
