from __future__ import annotations

from ninja import Schema


class WebhookOut(Schema):
    event_id: str
    status: str
    result: str
