"""Reading what Django's file-based email backend wrote.

It names a file after the second and the connection object, so two messages sent in the same
second can land in one file, each followed by a line of 79 dashes: count messages, not files.
"""

from __future__ import annotations

from pathlib import Path

SEPARATOR = "-" * 79


def sent_emails(outbox: Path) -> list[str]:
    messages: list[str] = []
    for path in sorted(outbox.iterdir()):
        chunks = path.read_text().split("\n" + SEPARATOR + "\n")
        messages.extend(chunk for chunk in chunks if chunk.strip())
    return messages
