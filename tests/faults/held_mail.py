"""The consumer's mail backend in the fault suite: Django's file backend that, while the file
``hold`` exists in its folder, announces the send (``sending-<pid>``) and waits before writing,
so a case can kill the consumer in the middle of an invoice."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.core.mail.backends.filebased import EmailBackend


class HeldFileBackend(EmailBackend):
    def send_messages(self, email_messages: Sequence[Any]) -> int:
        folder = Path(str(self.file_path))
        hold = folder.parent / "hold"
        if hold.exists():
            (folder.parent / f"sending-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while hold.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return super().send_messages(email_messages)
