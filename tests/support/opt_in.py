"""Suites that run only when asked for (the fault and scale suites: live rigs of processes)."""

from __future__ import annotations

from pathlib import Path

import pytest


def only_when_asked(
    config: pytest.Config, items: list[pytest.Item], folder: Path, marker: str
) -> None:
    """Mark the tests under ``folder`` with ``marker``; leave them out unless ``-m`` names it."""
    ours = [item for item in items if folder in Path(str(item.path)).parents]
    for item in ours:
        item.add_marker(getattr(pytest.mark, marker))
    if marker not in (config.option.markexpr or ""):
        config.hook.pytest_deselected(items=ours)
        items[:] = [item for item in items if item not in ours]
