"""Running ``marketlink`` commands in tests: through Typer's CliRunner in this process, and as
the installed console script in a process of its own, as an operator runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from marketlink.cli import app

EXAMPLE_PROJECT = Path(__file__).resolve().parents[2] / "example_project"

runner = CliRunner()


def invoke(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def invoke_json(*args: str) -> tuple[int, dict[str, Any]]:
    """Run a command with --json: its exit code and the one JSON document on stdout."""
    result = invoke(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def run_console_script(
    *args: str, database_url: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The installed ``marketlink`` script in its own process, on the example site; ``env``
    adds to (or overrides) this process's environment."""
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


def migrated_site(database_url: str, env: dict[str, str] | None = None) -> None:
    """Migrate the example site's database at ``database_url`` (``env`` as for
    ``run_console_script``), for the console script to run on."""
    migrate = subprocess.run(
        [sys.executable, str(EXAMPLE_PROJECT / "manage.py"), "migrate", "-v0"],
        env={**os.environ, **(env or {}), "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
