"""An email backend for load runs: builds each message as a real backend would (the MIME
rendering is part of an invoice's cost) and sends it nowhere. Django's locmem backend would keep
every message in ``mail.outbox``, which over a soak is memory growth of the bench's own."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend


class DiscardingBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            message.message().as_bytes()
        return len(email_messages)
