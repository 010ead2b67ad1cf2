"""The installed ``marketlink`` console script in its own process, as an operator runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE_PROJECT = Path(__file__).resolve().parents[2] / "example_project"


def run_console_script(
    *args: str, database_url: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``marketlink ARGS`` on the example project's settings against ``database_url``;
    ``env`` adds to (or overrides) this process's environment."""
    script = Path(sys.executable).with_name("marketlink")
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        **(env or {}),
    }
    return subprocess.run(
        [str(script), "--pythonpath", str(EXAMPLE_PROJECT), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
